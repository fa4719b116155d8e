// Command bench measures prodsearch, one subcommand per benchmark (as bbolt's
// `bbolt bench`): figures are ratios against a peer measured in the same run
// where one exists (the Python peers are in peers/). The measuring helpers
// (percentiles, memory and CPU readers, synthetic descriptors) are in
// measure.go and synth.go, once.
//
//	bench settings ...   backbones and describe settings on training classes
//	bench speed ...      decode, resize, inference and search against PyTorch
//	bench table ...      re-ranking and ensemble recipes on validation classes
//	bench load ...       HTTP search throughput and latency on loopback
//	bench soak ...       `prodsearch serve` under mixed load for a fixed time
//	bench phase2 ...     the hackathon's phase 2 (18,027 x 36,748) on one machine
//	bench scale ...      exact, HNSW and Weaviate search at scale against faiss
//	bench catalogue ...  methods for phone photos against studio images
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// benchmark is one subcommand: flags defines its flags and returns what
// runs it once dispatch has parsed them.
type benchmark struct {
	name, summary string
	flags         func(fs *flag.FlagSet) runFunc
}

// runFunc runs a benchmark whose flags are parsed.
type runFunc func(ctx context.Context, stdout io.Writer) error

// benchmarks lists the subcommands in the order usage shows them.
func benchmarks() []benchmark {
	return []benchmark{
		{"settings", "compare backbones and describe settings on training classes", settingsCmd},
		{"speed", "time decode, resize, inference and search against a PyTorch peer", speedCmd},
		{"table", "score re-ranking and ensemble recipes on validation classes", tableCmd},
		{"load", "search throughput and latency over HTTP on loopback", loadCmd},
		{"soak", "drive `prodsearch serve` with mixed clients for a fixed time", soakCmd},
		{"phase2", "exact search and re-ranking at the hackathon's phase-2 size", phase2Cmd},
		{"scale", "exact, HNSW and Weaviate search at scale against faiss", scaleCmd},
		{"catalogue", "phone photo -> studio image methods on validation and test classes", catalogueCmd},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// dispatch parses the flags of the benchmark args names and runs it;
// without one it lists them.
func dispatch(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		for _, b := range benchmarks() {
			if b.name == args[0] {
				fs := flag.NewFlagSet("bench "+b.name, flag.ContinueOnError)
				run := b.flags(fs)
				if err := fs.Parse(args[1:]); err != nil {
					return err
				}
				return run(ctx, stdout)
			}
		}
	}
	w := stdout
	if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
		w = os.Stderr
		defer fmt.Fprintf(w, "\nunknown benchmark %q\n", args[0])
	}
	fmt.Fprint(w, "usage: bench BENCHMARK [flags]   (bench BENCHMARK -h for its flags)\n\n")
	for _, b := range benchmarks() {
		fmt.Fprintf(w, "  %-9s %s\n", b.name, b.summary)
	}
	if w != stdout {
		return errors.New("unknown benchmark")
	}
	return nil
}
