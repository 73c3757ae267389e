package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func identity(s string) (string, error) { return s, nil }

func write(t *testing.T, path, s string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(s), 0o600))
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want, wantErr string
		build                        func(string) (string, error)
	}{
		{name: "trailing newline trimmed", content: "sk-1\n", want: "sk-1"},
		{name: "empty", content: "", wantErr: "is empty"},
		{name: "only white space", content: " \r\n\t", wantErr: "is empty"},
		{name: "too large", content: string(make([]byte, maxSize+1)), wantErr: "larger than"},
		{name: "build refuses, secret not echoed", content: "sk-SECRET", wantErr: "the secret is refused",
			build: func(s string) (string, error) { return "", errors.New("bad key " + s) }},
		{name: "build refuses in its own words", content: "sk-x", wantErr: "apiKey: must be",
			build: func(string) (string, error) { return "", errors.New("apiKey: must be printable") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			write(t, p, tc.content)
			build := tc.build
			if build == nil {
				build = identity
			}
			f, err := Open(p, build)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Contains(t, err.Error(), p, "the error names the file")
				require.NotContains(t, err.Error(), "SECRET")
				return
			}
			require.NoError(t, err)
			v, err := f.Load(time.Now())
			require.NoError(t, err)
			require.Equal(t, tc.want, v)
		})
	}
	_, err := Open(filepath.Join(dir, "missing"), identity)
	require.ErrorContains(t, err, "missing")
	_, err = Open(dir, identity)
	require.Error(t, err)
}

// A Kubernetes secret update: the file the path resolves to is swapped
// (symlink), possibly with the same size and an older time.
func TestLoadFollowsSwappedSymlink(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "v1"), "sk-aaaa")
	write(t, filepath.Join(dir, "v2"), "sk-bbbb")
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "v2"), old, old))
	link := filepath.Join(dir, "key")
	require.NoError(t, os.Symlink("v1", link))
	f, err := Open(link, identity)
	require.NoError(t, err)

	now := time.Now()
	tmp := filepath.Join(dir, "key.tmp")
	require.NoError(t, os.Symlink("v2", tmp))
	require.NoError(t, os.Rename(tmp, link))
	v, err := f.Load(now)
	require.NoError(t, err)
	require.Equal(t, "sk-aaaa", v, "not checked before CheckEvery")
	v, err = f.Load(now.Add(CheckEvery + time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, "sk-bbbb", v)
}

// Loads from many goroutines while the file changes: each gets a whole
// value (run with -race).
func TestLoadConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	write(t, p, "k0")
	f, err := Open(p, identity)
	require.NoError(t, err)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				v, _ := f.Load(start.Add(time.Duration(g*200+i) * 10 * time.Millisecond))
				require.Contains(t, []string{"k0", "k1", "k2", "k22"}, v) // an in-place write may be read half done
			}
		}()
	}
	write(t, p, "k1")
	write(t, p, "k22")
	wg.Wait()
	v, err := f.Load(start.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, "k22", v)
}
