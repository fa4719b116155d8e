package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"prodsearch/internal/vec"
)

// Records are a small hand-rolled binary format rather than JSON because
// start-up decodes one per reference and 100k JSON decodes cost more than
// reading all the vectors.
//
// item value: version byte, added (unix nanoseconds, varint), then
// uvarint-length-prefixed label, file name, content type, metadata, and the
// image size as a uvarint.
const recordVersion = 1

var errRecord = errors.New("malformed record")

func encodeItem(it *Item) []byte {
	b := make([]byte, 0, 32+len(it.Label)+len(it.FileName)+len(it.ContentType)+len(it.Metadata))
	b = append(b, recordVersion)
	b = binary.AppendVarint(b, it.Added.UnixNano())
	b = appendString(b, it.Label)
	b = appendString(b, it.FileName)
	b = appendString(b, it.ContentType)
	b = appendString(b, string(it.Metadata))
	b = binary.AppendUvarint(b, uint64(it.ImageSize))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeItem copies everything out of b, which may be bbolt's mmap.
func decodeItem(id string, b []byte) (Item, error) {
	it := Item{ID: id}
	if len(b) == 0 || b[0] != recordVersion {
		return it, fmt.Errorf("item %q: %w: unknown version", id, errRecord)
	}
	b = b[1:]
	ns, n := binary.Varint(b)
	if n <= 0 {
		return it, fmt.Errorf("item %q: %w", id, errRecord)
	}
	b = b[n:]
	it.Added = time.Unix(0, ns).UTC()
	var meta string
	for _, dst := range []*string{&it.Label, &it.FileName, &it.ContentType, &meta} {
		var err error
		if *dst, b, err = readString(b); err != nil {
			return it, fmt.Errorf("item %q: %w", id, err)
		}
	}
	if meta != "" {
		it.Metadata = []byte(meta)
	}
	size, n := binary.Uvarint(b)
	if n <= 0 || size > math.MaxInt32 {
		return it, fmt.Errorf("item %q: %w", id, errRecord)
	}
	it.ImageSize = int(size)
	return it, nil
}

// decodeLabel reads only the label, the one field start-up needs.
func decodeLabel(b []byte) (string, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return "", errRecord
	}
	_, n := binary.Varint(b[1:])
	if n <= 0 {
		return "", errRecord
	}
	s, _, err := readString(b[1+n:])
	return s, err
}

func readString(b []byte) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", nil, errRecord
	}
	end := n + int(l)
	return string(b[n:end]), b[end:], nil
}

func encodeVector(v []float32) []byte {
	return vec.AppendF32(make([]byte, 0, 4*len(v)), v)
}

// decodeVector fills dst from b; it fails rather than truncating. On
// little-endian machines the bytes already are the floats, so it is one
// memmove: start-up copies half a gigabyte per 100k 1280-d descriptors.
func decodeVector(dst []float32, b []byte) error {
	if len(b) != 4*len(dst) {
		return fmt.Errorf("%w: vector of %d bytes, want %d", errRecord, len(b), 4*len(dst))
	}
	if len(dst) == 0 {
		return nil
	}
	if littleEndian() {
		copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(dst)))
		return nil
	}
	vec.DecodeF32(dst, b)
	return nil
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
