// Command prodsearch is a visual product search engine: it describes product
// photos with a pretrained backbone, ranks references for each query, scores
// rankings the way the Naver AI Hackathon 2018 did, trains heads on class
// folders, and serves a catalogue over HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: flags are parsed inside run.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"infer":       {"rank references for every query and write the ranking file", cmdInfer},
		"eval":        {"score a ranking file against query and reference labels", cmdEval},
		"run":         {"infer and eval in one step, printing the score table", cmdRun},
		"backbones":   {"list the builtin backbone specs and whether their model files verify", cmdBackbones},
		"train":       {"fit whitening and a metric-learning head on class folders, a checkpoint per epoch", cmdTrain},
		"models":      {"list runs and checkpoints with validation figures, marking the best", cmdModels},
		"submit":      {"score a checkpoint on a labelled query/reference set and add it to the leaderboard", cmdSubmit},
		"leaderboard": {"print the leaderboard, best first", cmdLeaderboard},
		"index":       {"add, remove, list or count catalogue items in an embedded store", cmdIndex},
		"serve":       {"serve the catalogue: HTTP API, metrics and the search-by-photo page", cmdServe},
		"tune":        {"choose re-ranking parameters and ensemble weights on validation classes and store them in the bundle", cmdTune},
		"ensemble":    {"combine bundles or backbones into one ensemble bundle", cmdEnsemble},
		"tasks":       {"write photo -> catalogue task manifests (validation classes held out from training data, and test photos)", cmdTasks},
		"export":      {"write the model's whole descriptor as one plain ONNX graph", cmdExport},
		"compare":     {"score several models on several labelled tasks in one table", cmdCompare},
		"build":       {"the whole default recipe in one step: choose settings, train every member, ensemble, tune per catalogue shape, write one model", cmdBuild},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "prodsearch:", err)
		}
		os.Exit(1)
	}
}

// errUsage marks an error whose message the flag package already printed.
var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: prodsearch COMMAND [flags]   (prodsearch COMMAND -h for its flags)")
	fmt.Fprintln(w)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEnvironment: PRODSEARCH_MODELS (model dir), PRODSEARCH_ORT_LIB (libonnxruntime.so.1), PRODSEARCH_CACHE (descriptor cache dir), PRODSEARCH_RUNS (runs dir).")
}
