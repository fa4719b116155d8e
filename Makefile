# prodsearch: `make demo` runs the main job, `make test` the tests.
GO      ?= go
SHARED  ?= ../shared
DATA    ?= $(SHARED)/data/grocerystore/splits
CLASSES ?= $(SHARED)/data/grocerystore/dataset/classes.csv
BIN     := bin/prodsearch
# The three test tasks: photos against photos, catalogue images against
# photos, and a shop's search (every test photo against one catalogue image
# per product).
TASKS   := --task "photos=$(DATA)/query.tsv:$(DATA)/reference.tsv" \
           --task "catalogue images=$(DATA)/iconic_query.tsv:$(DATA)/reference.tsv" \
           --task "photo->catalogue=$(DATA)/query.tsv+$(DATA)/reference.tsv:$(DATA)/iconic_query.tsv"

.PHONY: setup deps build test fuzz demo model model-check bench shop clean

# setup installs the Debian libraries the cgo build links (libjpeg-turbo,
# libheif; apt-get, only those missing), fetches the ONNX Runtime library (npm
# pack, never the package's install script) and checks every shipped model
# file against its sha256.
setup: deps lib/libonnxruntime.so.1 build
	$(BIN) backbones

deps:
	scripts/setup-deps.sh

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

# demo scores the shipped model (models/default) beside the frozen backbone on
# GroceryStore's three test tasks, each with the re-ranking recipe for its
# catalogue's shape.
demo: setup
	$(BIN) compare $(TASKS)

# model rebuilds the shipped model from scratch with the one command that made
# it (into bin/model: the committed one is not touched; about an hour here:
# the last two blocks of both float backbones are fine-tuned, then refit);
# model-check compares the two on the validation figures stored in them and
# on the test tasks.
FINETUNE := --finetune-blocks 2 --epochs 3 --warmup 0 --aug ''
model: setup
	rm -rf bin/model
	$(BIN) build --data $(DATA)/train.tsv --catalogue $(CLASSES) $(FINETUNE) --out bin/model

model-check: model
	$(BIN) compare --max-diff 0.02 --model committed=models/default/model.json --model rebuilt=bin/model/model.json $(TASKS)

# shop indexes an example shop catalogue: one catalogue photo per product of
# GroceryStore's 40 test classes (splits/iconic_query.tsv), named from
# dataset/classes.csv, into ./shop (described as the model's recipe for
# one-image catalogues says: --shape one); then `bin/prodsearch serve --store shop`
# and search it from the page with the test photos (splits/query.tsv).
shop: setup
	awk -F, 'NR > 1 { name = $$1; gsub(/-/, " ", name); print $$2 "\t" name }' $(CLASSES) > bin/grocery-names.tsv
	$(BIN) index add --store shop --shape one --ids name --names bin/grocery-names.tsv $(DATA)/iconic_query.tsv
	@echo "serve it: $(BIN) serve --store shop   (then open http://127.0.0.1:8080/)"

bench: setup
	$(GO) run ./cmd/bench

clean:
	rm -rf bin
