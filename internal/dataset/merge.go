package dataset

import "strings"

// Merge joins sets into one, as if their items had been listed in one
// manifest: an ID or a file in two of them is an error naming both places.
// It is how one task takes its queries from several manifests (a shop's
// photo queries are the test split's queries and references together).
func Merge(sets ...*Set) (*Set, error) {
	srcs := make([]string, len(sets))
	n := 0
	for i, s := range sets {
		srcs[i] = s.Source
		n += len(s.Items)
	}
	out := &Set{Source: strings.Join(srcs, "+"), Items: make([]Item, 0, n)}
	if len(sets) > 0 {
		out.Format = sets[0].Format
	}
	dups := newDupChecker(out.Source, n)
	for _, s := range sets {
		for _, it := range s.Items {
			from := s.where[it.ID]
			if from == "" {
				from = s.Source
			}
			if err := dups.add(it, from, nil); err != nil {
				return nil, err
			}
			out.Items = append(out.Items, it)
		}
	}
	out.where = dups.where()
	return out, nil
}
