// Package secretfile reads a secret (an API key) from a file, such as a
// mounted Kubernetes secret, and reads it again when the file changes. The
// secret's value never appears in an error: errors name the path only.
package secretfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// CheckEvery is how often, at most, File.Load looks at the file again.
const CheckEvery = time.Second

// maxSize bounds what is read: a key is short; a huge file is a mistake.
const maxSize = 64 << 10

// File holds a value built from a secret file (for ai_upstream, a backend
// with its key) and builds it again when the file changes. Safe for
// concurrent use: Load is lock-free; of the callers that find a check due,
// one does it while the others keep the current value.
type File[T any] struct {
	path  string
	build func(secret string) (T, error)
	cur   atomic.Pointer[entry[T]]
	next  atomic.Int64 // UnixNano of the next check
}

type entry[T any] struct {
	value T
	stamp os.FileInfo
}

// Open reads path and builds the first value. A missing, unreadable or
// empty file, or a secret build refuses, is an error (naming the path,
// never the content): the config that needs it must not load.
func Open[T any](path string, build func(secret string) (T, error)) (*File[T], error) {
	f := &File[T]{path: path, build: build}
	e, err := f.read()
	if err != nil {
		return nil, err
	}
	f.cur.Store(e)
	f.next.Store(time.Now().Add(CheckEvery).UnixNano())
	return f, nil
}

// Path is the file's path.
func (f *File[T]) Path() string { return f.path }

// Load returns the current value. When a check is due (at most once per
// CheckEvery) it stats the file and, if the file changed (another file,
// size or modification time: a Kubernetes secret update swaps a symlink),
// reads it and builds the value again. A reload that fails keeps the
// previous value and returns the error, for the caller to log.
func (f *File[T]) Load(now time.Time) (T, error) {
	e := f.cur.Load()
	next := f.next.Load()
	if now.UnixNano() < next || !f.next.CompareAndSwap(next, now.Add(CheckEvery).UnixNano()) {
		return e.value, nil
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		return e.value, fmt.Errorf("secret file %s: keeping the previous key: %w", f.path, err)
	}
	if same(fi, e.stamp) {
		return e.value, nil
	}
	ne, err := f.read()
	if err != nil {
		return e.value, fmt.Errorf("keeping the previous key: %w", err)
	}
	f.cur.Store(ne)
	return ne.value, nil
}

func same(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// read reads the secret (surrounding white space trimmed: files often end
// in a newline) and builds its value.
func (f *File[T]) read() (*entry[T], error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("secret file %s: is a directory", f.path)
	}
	data, err := io.ReadAll(io.LimitReader(file, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", f.path, err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("secret file %s: larger than %d bytes", f.path, maxSize)
	}
	secret := bytes.TrimSpace(data)
	if len(secret) == 0 {
		return nil, fmt.Errorf("secret file %s: is empty", f.path)
	}
	v, err := f.build(string(secret))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", f.path, scrub(err, secret))
	}
	return &entry[T]{value: v, stamp: fi}, nil
}

// scrub makes sure an error from build does not carry the secret.
func scrub(err error, secret []byte) error {
	if bytes.Contains([]byte(err.Error()), secret) {
		return errors.New("the secret is refused")
	}
	return err
}
