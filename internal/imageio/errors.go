package imageio

import (
	"errors"
	"fmt"
)

// Sentinel errors let HTTP handlers and batch indexers map a bad upload to a
// status code or a skip decision with errors.Is, without parsing messages.
var (
	// ErrEmpty means there were no bytes at all, usually a client or
	// storage bug rather than a bad image.
	ErrEmpty = errors.New("imageio: empty input")
	// ErrUnsupported means the bytes are a format (or a feature of a format)
	// this package deliberately does not decode, e.g. BMP, TIFF, HEIC or
	// arithmetic-coded JPEG.
	ErrUnsupported = errors.New("imageio: unsupported image format")
	// ErrTooLarge means the input exceeds Limits; it is returned before the
	// pixel buffer is allocated, so it is cheap to hit.
	ErrTooLarge = errors.New("imageio: image too large")
	// ErrCorrupt means the bytes claim a supported format but do not decode.
	ErrCorrupt = errors.New("imageio: corrupt image")
	// ErrTruncated is the common special case of ErrCorrupt where the data
	// ends early (interrupted upload); errors.Is(err, ErrCorrupt) also holds.
	ErrTruncated = errors.New("imageio: truncated image")
)

// decodeError carries a sentinel kind plus the underlying decoder error so
// both errors.Is(err, ErrCorrupt) and errors.Is(err, io.ErrUnexpectedEOF) work.
type decodeError struct {
	kind   error  // one of the sentinels above
	format string // "jpeg", "png", ... or "" when unknown
	detail string // human-readable detail, may be empty
	cause  error  // may be nil
}

func (e *decodeError) Error() string {
	s := e.kind.Error()
	if e.format != "" {
		s += " (" + e.format + ")"
	}
	if e.detail != "" {
		s += ": " + e.detail
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *decodeError) Unwrap() []error {
	errs := make([]error, 0, 3)
	errs = append(errs, e.kind)
	if e.kind == ErrTruncated {
		errs = append(errs, ErrCorrupt)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func newErr(kind error, format string, cause error, detailf string, args ...any) error {
	d := detailf
	if len(args) > 0 {
		d = fmt.Sprintf(detailf, args...)
	}
	return &decodeError{kind: kind, format: format, detail: d, cause: cause}
}
