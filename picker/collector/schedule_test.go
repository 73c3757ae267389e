package collector

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func TestScheduleValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Schedule
		want []string
	}{
		{"defaults", Schedule{}.WithDefaults(), nil},
		{"no jitter", Schedule{Jitter: ptr(0.0)}, nil},
		{"100 proxies at 100/s: 1s", Schedule{Fleet: Fleet{Proxies: 100, ServerRate: 100}}, nil},
		{"negative jitter", Schedule{Jitter: ptr(-0.1)}, []string{"pools[0].scrape.jitter: must be in [0, 1]"}},
		{"jitter above 1", Schedule{Jitter: ptr(1.5)}, []string{"pools[0].scrape.jitter: must be in [0, 1]"}},
		{"NaN jitter", Schedule{Jitter: ptr(math.NaN())}, []string{"pools[0].scrape.jitter: must be in [0, 1]"}},
		{"negative proxies", Schedule{Fleet: Fleet{Proxies: -1}}, []string{"pools[0].scrape.fleet.proxies: must be >= 0"}},
		{"negative rate", Schedule{Fleet: Fleet{ServerRate: -1}}, []string{"pools[0].scrape.fleet.serverRate: must be a finite number >= 0"}},
		{"infinite rate", Schedule{Fleet: Fleet{ServerRate: math.Inf(1)}}, []string{"pools[0].scrape.fleet.serverRate: must be a finite number >= 0"}},
		{"interval stretched past 10s", Schedule{Fleet: Fleet{Proxies: 1000, ServerRate: 50}},
			[]string{"pools[0].scrape.fleet.serverRate: 1000 proxies at 50 expositions/s per server need a 20s scrape interval, more than 10s: metrics that old are not worth routing on"}},
		{"all at once", Schedule{Jitter: ptr(2.0), Fleet: Fleet{Proxies: -3, ServerRate: math.NaN()}},
			[]string{"pools[0].scrape.jitter: must be in [0, 1]", "pools[0].scrape.fleet.proxies: must be >= 0", "pools[0].scrape.fleet.serverRate: must be a finite number >= 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range tc.s.Validate("pools[0].scrape", 100*time.Millisecond) {
				got = append(got, e.Error())
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestScheduleInterval(t *testing.T) {
	const base = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		fleet Fleet
		want  time.Duration
	}{
		{"no bound", Fleet{Proxies: 100}, base},
		{"one proxy within the rate", Fleet{ServerRate: 20}, base},
		{"10 proxies at 100/s: as configured", Fleet{Proxies: 10, ServerRate: 100}, base},
		{"100 proxies at 100/s: 1s", Fleet{Proxies: 100, ServerRate: 100}, time.Second},
		{"30 proxies at 200/s: 150ms", Fleet{Proxies: 30, ServerRate: 200}, 150 * time.Millisecond},
		{"3 proxies at 7/s rounds to the ms", Fleet{Proxies: 3, ServerRate: 7}, 429 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Schedule{Fleet: tc.fleet}.Interval(base))
		})
	}
}

// Jittered waits stay inside interval × [1-j/2, 1+j/2] and use its width.
func TestWaitJitter(t *testing.T) {
	const interval = 100 * time.Millisecond
	require.Equal(t, interval, wait(interval, 0))
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 2000 {
		w := wait(interval, 0.2)
		lo, hi = min(lo, w), max(hi, w)
	}
	require.GreaterOrEqual(t, lo, 90*time.Millisecond)
	require.LessOrEqual(t, hi, 110*time.Millisecond)
	require.Less(t, lo, 91*time.Millisecond)
	require.Greater(t, hi, 109*time.Millisecond)
}

func TestScheduleSpecJitter(t *testing.T) {
	require.Equal(t, 0.0, Schedule{}.SpecJitter(), "unset: the collector's default")
	require.Less(t, Schedule{Jitter: ptr(0.0)}.SpecJitter(), 0.0, "explicit 0: none")
	require.Equal(t, 0.5, Schedule{Jitter: ptr(0.5)}.SpecJitter())
	require.Equal(t, 100*time.Millisecond, wait(100*time.Millisecond, -1))
}

// Scrape starts go on a grid of interval/20 so the targets due in one tick
// wake together; rounding to the nearest tick keeps the mean period.
func TestScheduleTick(t *testing.T) {
	require.Equal(t, 5*time.Millisecond, scheduleTick(100*time.Millisecond))
	ms := time.Millisecond
	for _, tc := range []struct {
		name           string
		d, tick, wantD time.Duration
	}{
		{"on the grid", 10 * ms, 5 * ms, 10 * ms},
		{"just after rounds down", 10*ms + 1, 5 * ms, 10 * ms},
		{"just before rounds up", 10*ms - 1, 5 * ms, 10 * ms},
		{"half way rounds up", 12*ms + 500*time.Microsecond, 5 * ms, 15 * ms},
		{"below half rounds down", 12*ms + 499*time.Microsecond, 5 * ms, 10 * ms},
		{"no grid", 12*ms + 1, 0, 12*ms + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.wantD, onTick(tc.d, tc.tick))
		})
	}

	t.Run("targets due in one tick wake together", func(t *testing.T) {
		tick := scheduleTick(100 * time.Millisecond)
		base := time.Now().Add(time.Second)
		grid := onTick(base.Sub(epoch), tick)
		at := epoch.Add(grid) // a grid point
		for _, off := range []time.Duration{-tick / 2, -1, 0, 1, tick/2 - 1} {
			require.Equal(t, grid, onTick(at.Add(off).Sub(epoch), tick), "offset %s", off)
		}
		require.Equal(t, grid+tick, onTick(at.Add(tick/2).Sub(epoch), tick))
		d := untilTick(at.Add(time.Millisecond), tick)
		require.InDelta(t, float64(time.Until(at)), float64(d), float64(50*time.Millisecond))
	})

	// Rounding up would add half a tick to every period.
	t.Run("the mean period stays the interval", func(t *testing.T) {
		interval := 100 * time.Millisecond
		tick := scheduleTick(interval)
		var sum time.Duration
		const n = 20000
		start := 7*time.Second + 1234567 // an arbitrary phase
		for range n {
			next := onTick(start+wait(interval, DefaultJitter), tick)
			sum += next - start
			start = next
		}
		mean := sum / n
		require.InDelta(t, float64(interval), float64(mean), float64(time.Millisecond))
	})
}
