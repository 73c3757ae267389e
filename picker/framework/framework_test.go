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
		own  float64 // OwnQueue: without Others
	}{
		{name: "capacity unknown: everything sent since the scrape counts", ep: Endpoint{Waiting: 2, Running: 3, Pending: 2}, want: 4, own: 4},
		{name: "free slots absorb what was sent", ep: Endpoint{Running: 3, Pending: 2, Capacity: 6}, want: 0, own: 0},
		{name: "a full server has a queue before it reports one", ep: Endpoint{Running: 6, Capacity: 6}, want: 1, own: 1},
		{name: "beyond the slots", ep: Endpoint{Waiting: 1, Running: 5, Pending: 3, Capacity: 6}, want: 4, own: 4},
		// One of ours ended since the scrape: a waiting request took its
		// slot, so a new one waits behind one fewer.
		{name: "ours that ended free a slot", ep: Endpoint{Waiting: 2, Running: 6, Pending: -1, Capacity: 6}, want: 2, own: 2},
		{name: "capacity unknown: ended ones shorten the queue, never below 0", ep: Endpoint{Waiting: 1, Running: 2, Pending: -3}, want: 0, own: 0},
		{name: "the other proxies' estimate counts in Queue, not OwnQueue", ep: Endpoint{Running: 6, Pending: 1, Others: 1.5, Capacity: 6}, want: 3.5, own: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.ep.Queue())
			require.Equal(t, tc.own, tc.ep.OwnQueue())
		})
	}
}

// positions reads back every ID below n from s.
func positions(s *Slots, n int32) []int {
	out := make([]int, n)
	for id := range n {
		out[id] = s.Of(id)
	}
	return out
}

func TestSlots(t *testing.T) {
	c := &Cycle{}
	// One cycle after another on the same Cycle: each sees only its own
	// endpoints, whatever earlier cycles wrote.
	for _, tc := range []struct {
		name string
		ids  []int32
		want []int // Of(0..len(want)-1)
	}{
		{name: "first cycle", ids: []int32{4, 1}, want: []int{-1, 1, -1, -1, 0, -1}},
		{name: "a subset: the others are absent", ids: []int32{1}, want: []int{-1, 0, -1, -1, -1}},
		{name: "IDs reused at other positions", ids: []int32{1, 0, 4}, want: []int{1, 0, -1, -1, 2}},
		{name: "the table grows", ids: []int32{40, 2}, want: []int{-1, -1, 1, -1, -1, -1}},
		{name: "past the table", ids: []int32{3}, want: []int{-1, -1, -1, 0}},
		{name: "none", ids: nil, want: []int{-1, -1, -1, -1, -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := make([]Endpoint, len(tc.ids))
			for i, id := range tc.ids {
				eps[i].ID = id
			}
			s := c.Slots(eps)
			require.Equal(t, tc.want, positions(s, int32(len(tc.want))))
			require.Equal(t, -1, s.Of(1000), "beyond the table")
			for i, id := range tc.ids {
				require.Equal(t, i, s.Of(id))
			}
		})
	}
}

func TestSlotsManyCycles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		startGen uint32 // 0: leave it
	}{
		{name: "from the start"},
		// The stamps of the first call (generation 1) come round again.
		{name: "across the generation wrap", startGen: ^uint32(0) - 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cycle{}
			// IDs 4..7 are stamped once, by generation 1, and never again.
			c.Slots([]Endpoint{{ID: 4}, {ID: 5}, {ID: 6}, {ID: 7}})
			if tc.startGen != 0 {
				c.slots.gen = tc.startGen
			}
			for cycle := range 20 {
				// Rotate which IDs are present and where.
				eps := []Endpoint{{ID: int32(cycle % 4)}, {ID: int32((cycle + 1) % 4)}}
				s := c.Slots(eps)
				want := []int{-1, -1, -1, -1, -1, -1, -1, -1}
				want[cycle%4], want[(cycle+1)%4] = 0, 1
				require.Equal(t, want, positions(s, 8), "cycle %d", cycle)
				require.NotZero(t, s.gen, "generation 0 would match zeroed entries")
			}
		})
	}
}

func TestCycleRand(t *testing.T) {
	a, b := &Cycle{}, &Cycle{}
	a.Reset(&Request{}, 0, 9)
	b.Reset(&Request{}, 0, 9)
	require.Equal(t, a.Rand(), b.Rand(), "a cycle's sequence follows its seed")
	require.NotEqual(t, a.Rand(), a.Rand())
	ep := &Endpoint{Key: 3}
	require.Equal(t, a.TieBreak(ep), a.TieBreak(ep), "stable within a cycle")

	var sum float64
	for range 10000 {
		f := a.Float64()
		require.True(t, f >= 0 && f < 1, "Float64 %v outside [0,1)", f)
		sum += f
	}
	require.InDelta(t, 0.5, sum/10000, 0.02, "Float64 is uniform")
}

func TestQueues(t *testing.T) {
	c := &Cycle{}
	c.Reset(&Request{}, 0, 1)
	eps := []Endpoint{{Waiting: 2}, {Waiting: 5, Pending: 1}, {Running: 3, Capacity: 2}}
	require.Equal(t, []float64{2, 6, 2}, c.Queues(eps))
	lo, hi := c.QueueBounds(eps)
	require.Equal(t, []float64{2, 6}, []float64{lo, hi})

	// A filter records what it computed for the endpoints it kept.
	qs := c.QueueScratch(len(eps))
	qs[0], qs[1] = 7, 8 // not eps' queues: proves they are not recomputed
	c.SetQueues(eps[:2], 7, 8)
	require.Equal(t, []float64{7, 8}, c.Queues(eps[:2]))
	lo, hi = c.QueueBounds(eps[:2])
	require.Equal(t, []float64{7, 8}, []float64{lo, hi})

	// Another list (another length or start) is computed afresh.
	require.Equal(t, []float64{6, 2}, c.Queues(eps[1:]))
	require.Equal(t, []float64{2, 6, 2}, c.Queues(eps))

	// A new cycle forgets the recorded list.
	c.SetQueues(eps, 0, 0)
	c.Reset(&Request{}, 0, 2)
	lo, hi = c.QueueBounds(eps)
	require.Equal(t, []float64{2, 6}, []float64{lo, hi})
	require.Nil(t, c.Queues(nil))
}
