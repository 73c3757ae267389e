package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// burn spends d ns of this thread's CPU (not wall time: a loaded machine
// that deschedules the thread does not shorten it).
func burn(d int64) func() {
	return func() {
		for t0 := threadCPU(); threadCPU()-t0 < d; {
		}
	}
}

func TestCPUMeterCountsTheCallsCPU(t *testing.T) {
	const d = 200_000 // ns
	m := &cpuMeter{}
	for range 20 {
		m.count()
		m.measure(burn(d))
	}
	got := m.perCall()
	t.Logf("per call %.1f µs, clock overhead %.2f µs", got/1e3, clockOverhead()/1e3)
	require.GreaterOrEqual(t, got, float64(d)-clockOverhead(), "at least the CPU the call burnt, less the clock read the meter subtracts")
	require.Less(t, got, 2.0*d, "not the clock reads of the burn loop twice over")

	e := &cpuMeter{}
	for range 1000 {
		e.count()
		e.measure(func() {})
	}
	require.Less(t, e.perCall(), got/10, "an empty call costs next to nothing")
	require.Zero(t, (&cpuMeter{}).perCall(), "nothing counted")
}
