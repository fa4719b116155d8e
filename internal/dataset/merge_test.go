package dataset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, err := Load(write("a.tsv", "x.jpg\t1\ny.jpg\t2\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(write("b.tsv", "z.jpg\t1\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Items) != 3 || m.Items[2].ID != "z.jpg" || len(m.Labels()) != 3 {
		t.Fatalf("merged %+v", m.Items)
	}
	c, err := Load(write("c.tsv", "y.jpg\t3\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Merge(a, c)
	if err == nil || !strings.Contains(err.Error(), "a.tsv:2") || !strings.Contains(err.Error(), "c.tsv:1") {
		t.Fatalf("duplicate across sets: %v", err)
	}
}
