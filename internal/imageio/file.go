package imageio

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ReadBytes reads an image file for decoding, hashing or storing. Paths
// come from manifests and folders that may hold anything, so it refuses
// what is not a regular file before opening it (opening a FIFO blocks until
// a writer appears, a device like /dev/zero never ends), and a file over
// maxBytes (when > 0) without reading it. A dangling symbolic link or a link
// loop fails at once with the system's error. Every error names path.
func ReadBytes(path string, maxBytes int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: %w", err) // *PathError names the file
	}
	if err := checkFile(path, st, maxBytes); err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: %w", err)
	}
	defer fh.Close()
	// Check again what was opened: the path may have changed since Stat.
	if st, err = fh.Stat(); err != nil {
		return nil, fmt.Errorf("imageio: %w", err)
	}
	if err := checkFile(path, st, maxBytes); err != nil {
		return nil, err
	}
	// Read at most maxBytes+1 so a file growing after Stat is still caught.
	var r io.Reader = fh
	if maxBytes > 0 {
		r = io.LimitReader(fh, maxBytes+1)
	}
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("imageio: read %s: %w", path, err)
	}
	if maxBytes > 0 && int64(buf.Len()) > maxBytes {
		return nil, fmt.Errorf("%s: %w", path, newErr(ErrTooLarge, "", nil, "more than %d bytes", maxBytes))
	}
	return buf.Bytes(), nil
}

func checkFile(path string, st fs.FileInfo, maxBytes int64) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("imageio: %s: not a regular file but %s", path, fileKind(st.Mode()))
	}
	if maxBytes > 0 && st.Size() > maxBytes {
		return fmt.Errorf("%s: %w", path, newErr(ErrTooLarge, "", nil, "%d bytes exceeds limit of %d", st.Size(), maxBytes))
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}
