package main

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

type countingScheduler struct {
	n     atomic.Int64
	panic bool
}

func (s *countingScheduler) Schedule(func()) {
	if s.panic {
		panic("scheduler")
	}
	s.n.Add(1)
}

// However the probes' answers, the timeout and the starting hook
// interleave, the stream is resumed exactly once: scheduled once, or
// picked at once by the hook (when everything answered before it let go),
// never both.
func TestProbeTicketResumesOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		probes  int
		timeout bool
	}{
		{"one probe", 1, false},
		{"three probes", 3, false},
		{"three probes and the timeout", 3, true},
		{"eight probes and the timeout", 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 500 {
				sched := &countingScheduler{}
				tk := &probeTicket{cfg: &pickerFilterConfig{}, sched: sched}
				tk.left.Store(probeHold)
				var wg sync.WaitGroup
				for range tc.probes {
					wg.Go(tk.answered)
				}
				if tc.timeout {
					wg.Go(func() { tk.fire(true) })
				}
				inline := !tk.started(tc.probes)
				wg.Wait()
				resumed := sched.n.Load()
				if inline {
					resumed++
				}
				require.EqualValues(t, 1, resumed)
				require.True(t, tk.fired.Load())
			}
		})
	}
	t.Run("the hook waits while a probe is out", func(t *testing.T) {
		sched := &countingScheduler{}
		tk := &probeTicket{cfg: &pickerFilterConfig{}, sched: sched}
		tk.left.Store(probeHold)
		tk.answered() // one of two
		require.True(t, tk.started(2))
		require.Zero(t, sched.n.Load())
		tk.answered()
		require.EqualValues(t, 1, sched.n.Load())
		tk.fire(true) // the timer, late
		require.EqualValues(t, 1, sched.n.Load())
		require.False(t, tk.timedOut.Load())
	})
}

// A panic on a probe's goroutine is recovered and counted, never reaching
// the collector's loop.
func TestProbeTicketPanicIsCounted(t *testing.T) {
	cfg := &pickerFilterConfig{}
	tk := &probeTicket{cfg: cfg, sched: &countingScheduler{panic: true}}
	tk.left.Store(probeHold)
	require.True(t, tk.started(1))
	require.NotPanics(t, tk.answered)
	require.EqualValues(t, 1, cfg.asyncPanics.Load())
}
