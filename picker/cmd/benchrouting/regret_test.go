package main

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegret(t *testing.T) {
	loads := make([]atomic.Int64, 4)
	loads[0].Store(4 + 6)
	loads[1].Store(1 + 6)
	loads[2].Store(2 + 6)
	loads[3].Store(3) // free slots: as good as the least queued
	var g regret
	g.observe(loads, 3, 6) // none queued: 0
	g.observe(loads, 2, 6) // 2 over
	g.observe(loads, 0, 6) // 4 over
	var h regret
	h.observe(loads, 1, 6) // with rank 3 at 0 queued: 1 over
	require.Equal(t, regret{n: 1, sum: 1}, h)
	require.Equal(t, regret{n: 3, sum: 6, two: 2}, g)
	var pooled regret
	pooled.add(g)
	pooled.add(g)
	require.Equal(t, regret{n: 6, sum: 12, two: 4}, pooled)
	require.Contains(t, g.String(), "2.00 requests more")
	require.Contains(t, g.String(), "66.7% of 3 choices")
	require.Equal(t, "-", regret{}.String())
}
