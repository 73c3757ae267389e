package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlanRepeatsRoundRobinAndTheFirstModeSideBySide(t *testing.T) {
	var names []string
	var seeds []uint64
	var last []bool
	for _, j := range plan(scenarios(), 3, 10) {
		names = append(names, j.sc.name)
		seeds = append(seeds, j.seed)
		last = append(last, j.last)
	}
	require.Equal(t, "round-robin", names[0])
	require.Equal(t, "picker x1 (default)", names[2])
	require.Equal(t, "picker x4 (default)", names[3])
	n := len(scenarios())
	require.Equal(t, "picker x4 (default, gossip)", names[4])
	require.Len(t, names, n+2*4, "round robin and default x1, x4 and x4 with gossip twice more")
	round := []string{"round-robin", "picker x1 (default)", "picker x4 (default)", "picker x4 (default, gossip)"}
	require.Equal(t, append(round, round...), names[n:])
	require.Equal(t, []uint64{11, 11, 11, 11, 12, 12, 12, 12}, seeds[n:])
	require.Equal(t, []bool{false, false, false, false, true, true, true, true}, last[n:])
	require.True(t, last[1], "random runs once")
	require.False(t, last[0])

	require.Len(t, plan(scenarios(), 1, 10), n, "one round: each scenario once")

	withGossip = false
	defer func() { withGossip = true }()
	require.NotContains(t, names[:len(scenarios())], "picker x4 (learned, gossip)", "only the first mode has a gossip row")
	for _, sc := range scenarios() {
		require.NotContains(t, sc.name, "gossip", "-gossip=false")
	}
}

func TestPoolMergesRoundsOfARow(t *testing.T) {
	a := result{name: "x", seeds: []uint64{1}, done: 2, ttft: []time.Duration{1, 2}, hits: 1, queries: 4, window: time.Second, perEndpoint: map[string]int{"a": 2}}
	b := result{name: "y", seeds: []uint64{1}, done: 1}
	c := result{name: "x", seeds: []uint64{2}, done: 3, ttft: []time.Duration{3}, hits: 3, queries: 4, window: time.Second, perEndpoint: map[string]int{"a": 1, "b": 2}}
	rows := pool(pool(pool(nil, a), b), c)
	require.Len(t, rows, 2)
	require.Equal(t, "y", rows[0].name, "the pooled row moves to where its last round ran")
	x := rows[1]
	require.Equal(t, []uint64{1, 2}, x.seeds)
	require.Equal(t, 5, x.done)
	require.Equal(t, []time.Duration{1, 2, 3}, x.ttft)
	require.InDelta(t, 0.5, x.hitRate(), 1e-12)
	require.Equal(t, 2*time.Second, x.window)
	require.Equal(t, map[string]int{"a": 3, "b": 2}, x.perEndpoint)
}
