package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBodyPoolClasses(t *testing.T) {
	for _, tc := range []struct {
		n, wantCap int
	}{
		{0, 8 << 10}, {1, 8 << 10}, {8 << 10, 8 << 10}, {8<<10 + 1, 16 << 10},
		{256 << 10, 256 << 10}, {256<<10 + 1, 512 << 10}, {1 << 20, 1 << 20},
		{3 << 20, 4 << 20}, {4 << 20, 4 << 20}, {4<<20 + 1, 4<<20 + 1},
	} {
		p := getBody(tc.n)
		require.Zero(t, len(*p), "n=%d", tc.n)
		require.Equal(t, tc.wantCap, cap(*p), "n=%d", tc.n)
		putBody(p)
	}
}

// A buffer that comes back from the pool is empty and large enough, and a
// grown buffer goes back to the class it fills, never a larger one.
func TestBodyPoolReuse(t *testing.T) {
	p := getBody(100 << 10)
	*p = append(*p, "stale data from an earlier stream"...)
	putBody(p)
	for range 4 {
		q := getBody(100 << 10)
		require.Empty(t, *q)
		require.GreaterOrEqual(t, cap(*q), 100<<10)
		putBody(q)
	}
	odd := make([]byte, 0, 100<<10) // not a class size: goes to the 64 KiB class
	putBody(&odd)
	for range 4 {
		q := getBody(64 << 10)
		require.GreaterOrEqual(t, cap(*q), 64<<10)
		putBody(q)
	}
	putBody(nil)
	small := make([]byte, 0, 100)
	putBody(&small) // below the smallest class: dropped
}

func BenchmarkBodyPool(b *testing.B) {
	for _, n := range []int{4 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run("size="+sizeName(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				putBody(getBody(n))
			}
		})
	}
}
