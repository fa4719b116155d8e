package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzRecord feeds arbitrary bytes to the decoders of the two values the
// catalogue keeps per item: the item record and the descriptor. A record is
// refused with errRecord naming the item, or decodes to an item that
// encodes and decodes back to itself, with decodeLabel (the start-up fast
// path) agreeing on the label; a descriptor of the right length decodes to
// floats that encode back to the same bytes, and one of another length is
// refused.
func FuzzRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		it, err := decodeItem("the-id", data)
		label, lerr := decodeLabel(data)
		if err != nil {
			if !errors.Is(err, errRecord) || !strings.Contains(err.Error(), `"the-id"`) {
				t.Fatalf("unclear error %v", err)
			}
		} else {
			if lerr != nil || label != it.Label {
				t.Fatalf("decodeLabel gave %q, %v; decodeItem gave label %q", label, lerr, it.Label)
			}
			if it.ID != "the-id" || it.ImageSize < 0 || it.Added.Location().String() != "UTC" {
				t.Fatalf("decoded %+v", it)
			}
			again, err := decodeItem("the-id", encodeItem(&it))
			if err != nil {
				t.Fatalf("re-encoded item: %v", err)
			}
			if again.Label != it.Label || again.FileName != it.FileName || again.ContentType != it.ContentType ||
				!bytes.Equal(again.Metadata, it.Metadata) || again.ImageSize != it.ImageSize || !again.Added.Equal(it.Added) {
				t.Fatalf("round trip changed %+v to %+v", it, again)
			}
		}

		if len(data)%4 == 0 {
			v := make([]float32, len(data)/4)
			if err := decodeVector(v, data); err != nil {
				t.Fatalf("descriptor of %d bytes: %v", len(data), err)
			}
			if out := encodeVector(v); !bytes.Equal(out, data) {
				t.Fatalf("descriptor round trip changed %x to %x", data, out)
			}
		}
		if err := decodeVector(make([]float32, len(data)/4+1), data); !errors.Is(err, errRecord) {
			t.Fatalf("descriptor of %d bytes into %d floats: %v", len(data), len(data)/4+1, err)
		}
	})
}
