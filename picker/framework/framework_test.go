package framework

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   Endpoint
		want float64
	}{
		{name: "capacity unknown: everything sent since the scrape counts", ep: Endpoint{Waiting: 2, Running: 3, Pending: 2}, want: 4},
		{name: "free slots absorb what was sent", ep: Endpoint{Running: 3, Pending: 2, Capacity: 6}, want: 0},
		{name: "a full server has a queue before it reports one", ep: Endpoint{Running: 6, Capacity: 6}, want: 1},
		{name: "beyond the slots", ep: Endpoint{Waiting: 1, Running: 5, Pending: 3, Capacity: 6}, want: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.ep.Queue())
		})
	}
}

func TestSlots(t *testing.T) {
	c := &Cycle{}
	eps := []Endpoint{{ID: 4}, {ID: 1}}
	require.Equal(t, []int32{-1, 1, -1, -1, 0}, c.Slots(eps))
	require.Equal(t, []int32{-1, 0}, c.Slots(eps[1:]), "reused and reset")
}

func TestCycleRand(t *testing.T) {
	a, b := &Cycle{}, &Cycle{}
	a.Reset(&Request{}, 0, 9)
	b.Reset(&Request{}, 0, 9)
	require.Equal(t, a.Rand(), b.Rand(), "a cycle's sequence follows its seed")
	require.NotEqual(t, a.Rand(), a.Rand())
	ep := &Endpoint{Key: 3}
	require.Equal(t, a.TieBreak(ep), a.TieBreak(ep), "stable within a cycle")
}
