package picker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// Our requests that ended since the scrape still count in its Running and
// Waiting: without subtracting them, a server that just finished our work
// looks busier than one that did not.
func TestPickCountsOurRequestsThatEndedSinceTheScrape(t *testing.T) {
	p := openManual(t, staticConfig([]string{epA, epB}, ""))
	publish(t, p, epA, metrics.Sample{})
	publish(t, p, epB, metrics.Sample{Waiting: 5})
	results := make([]Result, 3)
	for i := range results {
		p.Pick(&Request{}, &results[i])
		require.Equal(t, epA, results[i].Endpoints()[0])
	}
	// The scrape sees our three at A, and two of another proxy's at B.
	publish(t, p, epA, metrics.Sample{Waiting: 3})
	publish(t, p, epB, metrics.Sample{Waiting: 2})
	results[0].Done(OutcomeOK)
	results[1].Done(OutcomeOK) // A now holds one, B two
	var res Result
	for range 20 {
		p.Pick(&Request{}, &res)
		require.Equal(t, epA, res.Endpoints()[0])
		res.Done(OutcomeOK)
	}
}

// scrape.fleet.proxies, when configured, is the fleet's size: the other
// proxies' requests since the scrape are counted as (proxies-1) × our send
// rate to the endpoint × the time since, with no estimate to wait for.
func TestPickCountsTheConfiguredFleet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   string
		onlyToB bool
	}{
		{name: "four proxies configured", extra: `"scrape":{"fleet":{"proxies":4}}`, onlyToB: true},
		{name: "alone (not configured, too few of ours to estimate)", extra: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now int64 = int64(time.Second)
			prev := clockNow
			clockNow = func() int64 { return now }
			t.Cleanup(func() { clockNow = prev })

			p := openManual(t, staticConfig([]string{epA, epB}, tc.extra))
			publish(t, p, epA, metrics.Sample{At: now})
			publish(t, p, epB, metrics.Sample{At: now, Waiting: 50})
			var res Result
			for range 10 { // a send rate to A, none to B
				p.Pick(&Request{}, &res)
				require.Equal(t, epA, res.Endpoints()[0])
				res.Done(OutcomeOK)
			}
			now += int64(time.Second)
			publish(t, p, epA, metrics.Sample{At: now})
			publish(t, p, epB, metrics.Sample{At: now})
			now += int64(time.Second) // a second since both scrapes
			toA := 0
			for range 50 {
				p.Pick(&Request{}, &res)
				if res.Endpoints()[0] == epA {
					toA++
				}
				res.Done(OutcomeOK)
			}
			if tc.onlyToB {
				require.Zero(t, toA, "the other three proxies sent A about as much as we did")
			} else {
				require.Positive(t, toA, "A and B are equal to a lone proxy")
			}
		})
	}
}
