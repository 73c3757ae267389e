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
