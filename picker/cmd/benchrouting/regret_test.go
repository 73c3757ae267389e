package main

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegret(t *testing.T) {
	loads := make([]atomic.Int64, 3)
	loads[0].Store(4)
	loads[1].Store(1)
	loads[2].Store(2)
	var g regret
	g.observe(loads, 1) // the least loaded: 0
	g.observe(loads, 2) // 1 over
	g.observe(loads, 0) // 3 over
	require.Equal(t, regret{n: 3, sum: 4, two: 1}, g)
	var pooled regret
	pooled.add(g)
	pooled.add(g)
	require.Equal(t, regret{n: 6, sum: 8, two: 2}, pooled)
	require.Contains(t, g.String(), "1.33 requests more")
	require.Contains(t, g.String(), "33.3% of 3 choices")
	require.Equal(t, "-", regret{}.String())
}
