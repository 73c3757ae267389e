package transform

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestModelNamesIntern(t *testing.T) {
	var tab modelNames
	body := []byte(`model-a`)
	a := tab.intern(string(body[:7]))
	body[0] = 'X' // the request buffer is reused: the interned name must not change
	require.Equal(t, "model-a", a)
	b := tab.intern("model-a")
	require.Equal(t, unsafe.StringData(a), unsafe.StringData(b), "the second request gets the interned copy")

	// Past maxInterned the table stops growing; names are still right.
	for i := range maxInterned + 10 {
		name := fmt.Sprintf("m%d", i)
		require.Equal(t, name, tab.intern(name))
	}
	require.Len(t, *tab.m.Load(), maxInterned)

	var nilTab *modelNames
	require.Equal(t, "x", nilTab.intern("x"))
}

func TestModelNamesConcurrent(t *testing.T) {
	var tab modelNames
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := fmt.Sprintf("m%d", (i+g)%300)
				if got := tab.intern(name); got != name {
					t.Errorf("intern(%q) = %q", name, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkModelNamesIntern(b *testing.B) {
	var tab modelNames
	body := []byte(`{"model":"sim-model"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = tab.intern(unsafe.String(&body[10], 9))
	}
}
