package recipe

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"prodsearch/internal/bundle"
)

// writeCard writes MODEL.md: what the model is, what it was trained on and
// every validation figure its choices were made by.
func writeCard(path string, r *Result) error {
	var b bytes.Buffer
	p := r.Bundle.Provenance
	fmt.Fprintf(&b, "# Model %s\n\n", r.Bundle.ID())
	fmt.Fprintf(&b, "Built by `%s` in %s on %s.\n\n", p.Command, r.Wall.Round(1e9), p.Built.Format("2006-01-02 15:04 UTC"))
	switch {
	case p.CatalogueTrained:
		fmt.Fprintf(&b, "- training data: `%s` and the catalogue images of `%s`, content sha256 `%s` (over every image the heads trained on)\n", p.Data, p.Catalogue, p.DataSHA256)
	case p.Catalogue != "":
		fmt.Fprintf(&b, "- training data: `%s`, content sha256 `%s`\n- catalogue images (validation only): `%s`\n", p.Data, p.DataSHA256, p.Catalogue)
	default:
		fmt.Fprintf(&b, "- training data: `%s`, content sha256 `%s`\n", p.Data, p.DataSHA256)
	}
	fmt.Fprintf(&b, "- validation classes (held out of training, every choice made on them): %s\n", strings.Join(p.ValClasses, ", "))
	fmt.Fprintf(&b, "- descriptor: %d-d", r.Bundle.Dim())
	if r.Bundle.IsEnsemble() {
		parts := make([]string, len(r.Bundle.Members))
		for i, m := range r.Bundle.Members {
			parts[i] = fmt.Sprintf("%s × %g", m.Bundle.Name, m.Weight)
		}
		fmt.Fprintf(&b, ", ensemble of %s", strings.Join(parts, ", "))
	}
	b.WriteString("\n\n## Validation tasks\n\n| task | shape | queries | references |\n|---|---|---|---|\n")
	for _, t := range r.Tasks {
		fmt.Fprintf(&b, "| %s | %s | %d | %d |\n", t.Name, t.Shape, len(t.Qs), len(t.Rs))
	}
	b.WriteString("\n## Describe settings (frozen backbone, mAP per task)\n\n| backbone | settings |")
	for _, t := range r.Tasks {
		fmt.Fprintf(&b, " %s |", t.Name)
	}
	b.WriteString(" mean |\n|---|---|" + strings.Repeat("---|", len(r.Tasks)+1) + "\n")
	for _, s := range r.Settings {
		mark := ""
		if chosen, ok := r.Chosen[s.Backbone]; ok && settingsName(chosen) == settingsName(s.Settings) {
			mark = " **(chosen)**"
		}
		fmt.Fprintf(&b, "| %s | %s%s |", s.Backbone, settingsName(s.Settings), mark)
		for _, sc := range s.PerTask {
			fmt.Fprintf(&b, " %.4f |", sc.MAP)
		}
		fmt.Fprintf(&b, " %.4f |\n", s.Mean)
	}
	b.WriteString("\n## Members (leave-one-out validation mAP)\n\n| backbone | frozen | whitening only | best checkpoint | val mAP |\n|---|---|---|---|---|\n")
	for _, name := range sortedRunNames(r) {
		s := r.Runs[name]
		whitened := "–" // a fine-tuning run fits its whitening inside training
		if s.Whitened.ValMAP > 0 {
			whitened = fmt.Sprintf("%.4f", s.Whitened.ValMAP)
		}
		fmt.Fprintf(&b, "| %s | %.4f | %s | %s | %.4f |\n", name, s.Frozen.ValMAP, whitened, s.Best.Ref(), s.Best.Metrics.ValMAP)
	}
	if tuned := fineTunedMembers(r.Bundle); len(tuned) > 0 {
		fmt.Fprintf(&b, "\nThe backbone's last blocks were fine-tuned with the head for %s; the other members trained a head only.\n", strings.Join(tuned, ", "))
	}
	if len(r.Refits) > 0 {
		b.WriteString("\nThe model holds the refits: after every choice was made on the held-out classes, each member was trained once more on every training class (the validation ones too) for its best epoch count. The validation figures here are the held-out runs'; a refit has none of its own.\n\n| backbone | refit checkpoint | epochs |\n|---|---|---|\n")
		for _, name := range sortedRunNames(r) {
			if s, ok := r.Refits[name]; ok {
				fmt.Fprintf(&b, "| %s | %s | %d |\n", name, s.Best.Ref(), s.Best.Metrics.Epoch)
			}
		}
	}
	b.WriteString("\n## Re-ranking per catalogue shape (ensemble, validation)\n\n| shape | task | recipe | mAP | R@1 | plain mAP | plain R@1 |\n|---|---|---|---|---|---|---|\n")
	for _, rc := range r.Recipes {
		name := recipeName(rc.Rerank)
		if rc.RefCrop != nil {
			name += fmt.Sprintf("; catalogue images at centre crop %g (0 = whole)", *rc.RefCrop)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.4f | %.3f | %.4f | %.3f |\n", rc.Shape, rc.Task, name, rc.Val.MAP, rc.Val.R1, rc.Plain.MAP, rc.Plain.R1)
	}
	return bundle.WriteFileAtomic(path, b.Bytes())
}

// fineTunedMembers names the members of m whose backbone's last blocks
// were trained.
func fineTunedMembers(m bundle.Bundle) []string {
	if m.FineTuned != nil {
		return []string{m.Name}
	}
	var out []string
	for _, mb := range m.Members {
		if mb.Bundle.FineTuned != nil {
			out = append(out, mb.Bundle.Name)
		}
	}
	return out
}

func sortedRunNames(r *Result) []string {
	var out []string
	for n := range r.Runs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
