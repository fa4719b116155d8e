package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"prodsearch/internal/bundle"
	"prodsearch/internal/cache"
	"prodsearch/internal/dataset"
	"prodsearch/internal/describe"
	"prodsearch/internal/rerank"
	"prodsearch/internal/runs"
	"prodsearch/internal/tune"
)

// family groups re-ranking recipes into the steps the table switches on.
func family(p *rerank.Params) string {
	switch {
	case p == nil:
		return "none"
	case p.KRecip:
		return "k-reciprocal"
	case p.QE > 0 && p.DBA > 0:
		return "DBA+QE"
	case p.QE > 0:
		return "QE"
	default:
		return "DBA"
	}
}

// tableCmd prints, for an ensemble bundle, each member alone and the
// ensemble, and each re-ranking step with the parameters chosen on
// validation classes next to the parameters that would have been best on the
// test split (shown only to measure the gap; nothing is chosen from it).
func tableCmd(fs *flag.FlagSet) runFunc {
	bpath := fs.String("bundle", "runs/ens3.json", "ensemble bundle whose members are compared")
	splits := fs.String("splits", "../shared/data/grocerystore/splits", "GroceryStore splits")
	valRun := fs.String("val-run", "coral_mnv1", "run whose held-out classes are the validation classes")
	valIconic := fs.String("val-iconic", "", "catalogue images as validation queries, e.g. ../dataset/classes.csv (GroceryStore's class table; a relative path is taken from -splits); only the validation classes' images are used")
	return func(ctx context.Context, w io.Writer) error {
		b, err := bundle.Load(*bpath)
		if err != nil {
			return err
		}
		if !b.IsEnsemble() {
			return fmt.Errorf("%s is not an ensemble", *bpath)
		}
		c, err := cache.Open(cache.DefaultDir())
		if err != nil {
			return err
		}
		defer c.Close()
		load := func(name string) []dataset.Item {
			if !filepath.IsAbs(name) {
				name = filepath.Join(*splits, name)
			}
			s, lerr := dataset.Load(name)
			if lerr != nil {
				err = lerr
				return nil
			}
			return s.Items
		}
		train, query, iconic, refs := load("train.tsv"), load("query.tsv"), load("iconic_query.tsv"), load("reference.tsv")
		if err != nil {
			return err
		}
		val, err := valItems(train, *valRun)
		if err != nil {
			return err
		}
		vq, vr := tune.Split(val, 2)
		type task struct {
			name   string
			qs, rs []dataset.Item
		}
		valTasks := []task{{"val photo", vq, vr}}
		if *valIconic != "" {
			vi := load(*valIconic)
			if err != nil {
				return err
			}
			valTasks = append(valTasks, task{"val iconic", dataset.WithLabels(vi, dataset.LabelSet(val)), val})
		}
		testTasks := []task{{"query.tsv", query, refs}, {"iconic_query.tsv", iconic, refs}}
		describeAll := func(ts []task) ([][]*tune.Problem, error) {
			out := make([][]*tune.Problem, len(ts))
			for _, m := range b.Members {
				eng, err := bundle.Open(m.Bundle, bundle.Options{})
				if err != nil {
					return nil, err
				}
				for i, t := range ts {
					p, err := tune.Describe(ctx, eng, t.qs, t.rs, describe.FileOptions{Cache: c}, os.Stderr)
					if err != nil {
						eng.Close()
						return nil, err
					}
					out[i] = append(out[i], p)
				}
				eng.Close()
			}
			return out, nil
		}
		// Each member's engine opens once, for the validation and test tasks.
		sets, err := describeAll(append(valTasks, testTasks...))
		if err != nil {
			return err
		}
		valSets, testSets := sets[:len(valTasks)], sets[len(valTasks):]
		// Weights and re-ranking chosen on validation (mean over the tasks).
		weights, _, err := tune.Weights(ctx, valSets...)
		if err != nil {
			return err
		}
		valMean, err := tune.RerankTasks(ctx, valSets, weights)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "validation: %d classes held out by run %s; ensemble weights chosen there: %v\n\n", len(dataset.LabelSet(val)), *valRun, weights)
		for ti, t := range testTasks {
			fmt.Fprintf(w, "%s (test split, %d queries)\n%-44s %-34s %7s %6s   %-34s %7s %6s\n", t.name, len(t.qs), "step", "chosen on validation", "mAP", "R@1", "best on test (for the gap only)", "mAP", "R@1")
			for mi, m := range b.Members {
				s, err := testSets[ti][mi].Score(ctx, nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%-44s %-34s %7.4f %6.3f\n", "member "+m.Bundle.Name+" alone", "-", s.MAP, s.R1)
			}
			ens, err := tune.Combine(testSets[ti], weights)
			if err != nil {
				return err
			}
			testTrials, err := ens.Rerank(ctx, tune.RerankGrid())
			if err != nil {
				return err
			}
			for _, fam := range []string{"none", "QE", "DBA", "DBA+QE", "k-reciprocal"} {
				vbest := firstOf(valMean, fam)
				vscore := scoreOf(testTrials, vbest.Name)
				tbest := firstOf(testTrials, fam)
				fmt.Fprintf(w, "%-44s %-34s %7.4f %6.3f   %-34s %7.4f %6.3f\n", "ensemble + "+fam, vbest.Name, vscore.Scores.MAP, vscore.Scores.R1, tbest.Name, tbest.Scores.MAP, tbest.Scores.R1)
			}
			chosen := valMean[0]
			cs := scoreOf(testTrials, chosen.Name)
			fmt.Fprintf(w, "%-44s %-34s %7.4f %6.3f   %-34s %7.4f %6.3f\n\n", "ensemble + recipe chosen on validation", chosen.Name, cs.Scores.MAP, cs.Scores.R1, testTrials[0].Name, testTrials[0].Scores.MAP, testTrials[0].Scores.R1)
		}
		return nil
	}
}

func firstOf(trials []tune.Trial, fam string) tune.Trial {
	for _, t := range trials {
		if family(t.Params) == fam {
			return t
		}
	}
	return tune.Trial{Name: "?"}
}

func scoreOf(trials []tune.Trial, name string) tune.Trial {
	for _, t := range trials {
		if t.Name == name {
			return t
		}
	}
	return tune.Trial{}
}

// valItems keeps the training items of the classes a run held out.
func valItems(items []dataset.Item, run string) ([]dataset.Item, error) {
	keep, err := runs.ValClasses(runs.Dir(""), run)
	return dataset.WithLabels(items, keep), err
}
