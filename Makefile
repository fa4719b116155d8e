# prodsearch: `make demo` runs the main job, `make test` the tests.
GO      ?= go
SHARED  ?= ../shared
DATA    ?= $(SHARED)/data/grocerystore/splits
BIN     := bin/prodsearch

.PHONY: setup build test fuzz demo bench clean

# setup fetches the ONNX Runtime library (npm pack, never the package's install
# script) and checks every shipped model file against its sha256.
setup: lib/libonnxruntime.so.1 build
	$(BIN) backbones

lib/libonnxruntime.so.1: scripts/setup-ort.sh
	scripts/setup-ort.sh

build:
	$(GO) build -o $(BIN) ./cmd/prodsearch

test: setup
	test -z "$$(gofmt -l cmd internal)" || { gofmt -l cmd internal; echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

# fuzz runs every fuzz target for FUZZTIME (default 10s) each; the seed
# corpora already run as tests in `make test`.
fuzz:
	scripts/fuzz.sh

# demo describes the GroceryStore test split (query.tsv against reference.tsv),
# ranks, scores and prints the table.
demo: setup
	$(BIN) run --queries $(DATA)/query.tsv --references $(DATA)/reference.tsv --out bin/demo-ranking.tsv

bench: setup
	$(GO) run ./cmd/bench

clean:
	rm -rf bin
