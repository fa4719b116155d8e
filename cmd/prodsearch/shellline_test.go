package main

import (
	"os/exec"
	"strings"
	"testing"
)

// A shell reads the provenance's command line back as the same arguments.
func TestShellLineRoundTrips(t *testing.T) {
	args := []string{"prodsearch", "build", "--aug", "", "--out", "my models/it's", "--crops", "1,0.8", "$HOME", "a\\b"}
	out, err := exec.Command("sh", "-c", "printf '[%s]\\n' "+shellLine(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]\n")
	}
	if string(out) != want.String() {
		t.Fatalf("the shell read %q as\n%s\nwant\n%s", shellLine(args), out, want.String())
	}
	if got := shellLine([]string{"prodsearch", "build", "--out", "m"}); got != "prodsearch build --out m" {
		t.Errorf("plain arguments quoted: %s", got)
	}
}
