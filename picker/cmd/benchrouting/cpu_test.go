package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCPUMeterCountsOnlyTheCall(t *testing.T) {
	spin := func(d time.Duration) func() {
		return func() {
			for t0 := time.Now(); time.Since(t0) < d; {
			}
		}
	}
	m := &cpuMeter{}
	for range 100 {
		m.count()
		m.measure(spin(50 * time.Microsecond))
	}
	t.Logf("per call %.1f µs, overhead %.2f µs", m.perCall()/1e3, clockOverhead()/1e3)
	require.InDelta(t, 50e3, m.perCall(), 25e3)
	e := &cpuMeter{}
	for range 1000 {
		e.count()
		e.measure(func() {})
	}
	require.Less(t, e.perCall(), 1e3, "an empty call costs (almost) nothing")
}
