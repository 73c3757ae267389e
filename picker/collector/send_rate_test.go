package collector

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSendRate(t *testing.T) {
	var r sendRate
	require.Zero(t, r.observe(0, 1e9), "the first scrape only starts the count")
	// 10 requests every 100 ms: 1e-7 per ns, approached with the 2 s window.
	var got float64
	for i := 1; i <= 200; i++ {
		got = r.observe(uint64(10*i), int64(1e9+i*1e8))
	}
	require.InEpsilon(t, 1e-7, got, 0.01)
	// A clock that does not advance, or a counter that went back (a
	// target reused): no change, no division by zero.
	require.Equal(t, got, r.observe(2000, int64(1e9+200*1e8)))
	require.Equal(t, got, r.observe(5, int64(1e9+201*1e8)))
	// Silence decays it.
	for i := 202; i <= 262; i++ {
		got = r.observe(5, int64(1e9+i*1e8))
	}
	require.Less(t, got, 1e-7/10)
}
