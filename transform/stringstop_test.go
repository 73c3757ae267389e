package transform

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIndexStop puts every byte value at every position of buffers around
// the routine's steps (32 and 64 bytes, the last block read again) and
// starts the search before, at and after it: indexStop must find what the
// byte-by-byte loop finds.
func TestIndexStop(t *testing.T) {
	for _, n := range []int{0, 1, 7, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129, 200} {
		t.Run("", func(t *testing.T) {
			b := bytes.Repeat([]byte("plain é "), n/8+1)[:n]
			for p := range n {
				for c := range 256 {
					old := b[p]
					b[p] = byte(c)
					for _, i := range []int{0, 1, p - 1, p, p + 1, n - 31, n - 1, n} {
						if i < 0 || i > n {
							continue
						}
						require.Equal(t, indexStopBytes(b, i), indexStop(b, i), "len %d, %#x at %d, from %d", n, c, p, i)
					}
					b[p] = old
				}
			}
		})
	}
}

// FuzzIndexStop checks indexStop (the AVX2 routine on amd64) against the
// byte-by-byte loop from every start.
func FuzzIndexStop(f *testing.F) {
	f.Add([]byte(`plain text with a "quote" and a \ backslash, then a tab:	, at the end of a long line`))
	f.Add(bytes.Repeat([]byte("x"), 70))
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range len(b) + 1 {
			require.Equal(t, indexStopBytes(b, i), indexStop(b, i), "from %d", i)
		}
	})
}
