package backbone

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseSpec feeds arbitrary bytes as a backbone spec. An accepted spec
// must be valid, must have been one JSON object and nothing more, and must
// survive being written back out and parsed again unchanged.
func FuzzParseSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "spec") {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %q, which is not a single JSON value", data)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid spec: %v", err)
		}
		if err := s.Norm().Validate(); err != nil {
			t.Fatalf("accepted a spec with a bad normalisation: %v", err)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseSpec(out)
		if err != nil {
			t.Fatalf("re-encoded spec %s: %v", out, err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed %+v to %+v", s, again)
		}
	})
}
