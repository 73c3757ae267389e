package picker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

const (
	epA = "10.0.0.1:8000"
	epB = "10.0.0.2:8000"
	epC = "10.0.0.3:8000"
	epD = "10.0.0.4:8000"
)

// loraFull is a server that runs another adapter and has no room for more.
var loraFull = metrics.NewLoRA([]string{"other"}, nil, 1)

func TestPickScheduling(t *testing.T) {
	stale := collector.Now() - int64(time.Hour)
	for _, tc := range []struct {
		name    string
		samples map[string]*metrics.Sample // nil: no usable metrics
		req     Request
		failed  []string // endpoints that failed just now
		want    []string // the list, in order; nil with a non-OK status
		status  Status
	}{
		{
			name: "lower queue and KV wins, fallbacks in score order",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 3, KVUsage: 0.5},
				epB: {Waiting: 0, KVUsage: 0.1},
				epC: {Waiting: 1, KVUsage: 0.3},
				epD: {Waiting: 2, KVUsage: 0.4},
			},
			want: []string{epB, epC, epD},
		},
		{
			name: "a full server is avoided before it reports a queue",
			samples: map[string]*metrics.Sample{
				epA: {Running: 6, PeakRunning: 6, KVUsage: 0.3},
				epB: {Running: 5, PeakRunning: 6, KVUsage: 0.4},
			},
			want: []string{epB, epA},
		},
		{
			name: "an active LoRA wins",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 1, KVUsage: 0.2, LoRA: loraFull},
				epB: {Waiting: 1, KVUsage: 0.2, LoRA: metrics.NewLoRA([]string{"sql-lora"}, nil, 1)},
				epC: {Waiting: 2, KVUsage: 0.2, LoRA: loraFull},
			},
			req:  Request{Model: "sql-lora"},
			want: []string{epB, epA, epC},
		},
		{
			name: "room to load an adapter beats a server that would have to evict",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 1, KVUsage: 0.2, LoRA: loraFull},
				epB: {Waiting: 1, KVUsage: 0.2, LoRA: metrics.NewLoRA([]string{"other"}, nil, 2)},
			},
			req:  Request{Model: "sql-lora"},
			want: []string{epB, epA},
		},
		{
			name: "LoRA beats a higher KV-cache use",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 0, KVUsage: 0.1, LoRA: loraFull},
				epB: {Waiting: 0, KVUsage: 0.4, LoRA: metrics.NewLoRA([]string{"sql-lora"}, nil, 1)},
			},
			req:  Request{Model: "sql-lora"},
			want: []string{epB, epA},
		},
		{
			name: "a saturated endpoint is avoided even when it scores best otherwise",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 5, KVUsage: 0.0},
				epB: {Waiting: 2, KVUsage: 0.5},
				epC: {Waiting: 0, KVUsage: 0.85},
			},
			want: []string{epB},
		},
		{
			name: "all saturated: a sheddable request is shed",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 7, KVUsage: 0.5},
				epB: {Waiting: 5, KVUsage: 0.9},
			},
			req:    Request{Objective: "batch"},
			status: StatusShed,
		},
		{
			name: "all saturated: a critical request goes to the least loaded",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 9, KVUsage: 0.5},
				epB: {Waiting: 5, KVUsage: 0.9},
				epC: {Waiting: 5, KVUsage: 0.85},
			},
			req:  Request{Objective: "critical"},
			want: []string{epC, epB, epA},
		},
		{
			name: "all saturated: an unknown objective gets the default priority and is served",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 9},
				epB: {Waiting: 6},
			},
			req:  Request{Objective: "unmapped"},
			want: []string{epB, epA},
		},
		{
			name: "a stale endpoint is avoided",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 3, KVUsage: 0.5},
				epB: {Waiting: 0, KVUsage: 0.0, At: stale},
			},
			want: []string{epA},
		},
		{
			name: "subset hint: the best of the subset",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 2},
				epB: {Waiting: 0},
				epC: {Waiting: 1},
			},
			req:  Request{Subset: []string{epA, epC}, HasSubset: true},
			want: []string{epC, epA},
		},
		{
			name: "subset hint: partial match",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 2},
				epB: {Waiting: 0},
			},
			req:  Request{Subset: []string{"10.9.9.9:8000", epA}, HasSubset: true},
			want: []string{epA},
		},
		{
			name:    "subset hint: no match",
			samples: map[string]*metrics.Sample{epA: {}, epB: {}},
			req:     Request{Subset: []string{"10.9.9.9:8000"}, HasSubset: true},
			status:  StatusNoCapacity,
		},
		{
			name:    "subset hint: empty",
			samples: map[string]*metrics.Sample{epA: {}, epB: {}},
			req:     Request{Subset: []string{}, HasSubset: true},
			status:  StatusNoCapacity,
		},
		{
			name:    "subset hint: matches only endpoints without metrics (fail-open stays inside it)",
			samples: map[string]*metrics.Sample{epA: nil, epB: {}},
			req:     Request{Subset: []string{epA}, HasSubset: true},
			want:    []string{epA},
		},
		{
			name:    "endpoints without usable metrics are never picked",
			samples: map[string]*metrics.Sample{epA: nil, epB: {Waiting: 4, KVUsage: 0.7}},
			want:    []string{epB},
		},
		{
			name:    "no usable metrics at all",
			samples: map[string]*metrics.Sample{epA: nil, epB: nil},
			status:  StatusNoMetrics,
		},
		{
			name: "a recently failed endpoint is avoided",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 0},
				epB: {Waiting: 3},
			},
			failed: []string{epA},
			want:   []string{epB},
		},
		{
			name: "when every endpoint failed recently they are still used",
			samples: map[string]*metrics.Sample{
				epA: {Waiting: 0},
				epB: {Waiting: 3},
			},
			failed: []string{epA, epB},
			want:   []string{epA, epB},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var eps []string
			for _, a := range []string{epA, epB, epC, epD} {
				if _, ok := tc.samples[a]; ok {
					eps = append(eps, a)
				}
			}
			p := openManual(t, staticConfig(eps, `"priorities":{"batch":-1,"critical":1}`))
			for a, s := range tc.samples {
				if s != nil {
					publish(t, p, a, *s)
				}
			}
			for _, a := range tc.failed {
				target(t, p, a).Fail()
			}
			var res Result
			p.Pick(&tc.req, &res)
			require.Equal(t, tc.status, res.Status)
			if tc.status != StatusOK {
				require.Empty(t, res.Endpoints())
				return
			}
			require.Equal(t, tc.want, res.Endpoints())
			require.Equal(t, int64(1), target(t, p, tc.want[0]).InFlight())
			res.Done(OutcomeOK)
			require.Equal(t, int64(0), target(t, p, tc.want[0]).InFlight())
		})
	}
}

// Metrics are up to one scrape old: the picks this proxy made since must
// count, or a burst lands on one server.
func TestPickSpreadsABurstBetweenScrapes(t *testing.T) {
	p := openManual(t, staticConfig([]string{epA, epB}, ""))
	publish(t, p, epA, metrics.Sample{Waiting: 0})
	publish(t, p, epB, metrics.Sample{Waiting: 1})
	results := make([]Result, 4)
	count := map[string]int{}
	for i := range results {
		p.Pick(&Request{}, &results[i])
		count[results[i].Endpoints()[0]]++
	}
	require.Equal(t, epA, results[0].Endpoints()[0])
	// Without counting its own picks the proxy would send all four to A.
	queueA, queueB := count[epA], 1+count[epB]
	require.LessOrEqual(t, max(queueA, queueB)-min(queueA, queueB), 1, "picks %v", count)
	for i := range results {
		results[i].Done(OutcomeOK)
	}
	require.Zero(t, target(t, p, epA).InFlight())
}

func TestPickTieBreakIsRandom(t *testing.T) {
	p := openManual(t, staticConfig([]string{epA, epB, epC}, ""))
	for _, a := range []string{epA, epB, epC} {
		publish(t, p, a, metrics.Sample{Waiting: 1, KVUsage: 0.1})
	}
	seen := map[string]int{}
	var res Result
	for range 300 {
		p.Pick(&Request{}, &res)
		seen[res.Endpoints()[0]]++
		res.Done(OutcomeOK)
	}
	require.Len(t, seen, 3, "equal endpoints must all get picks: %v", seen)
}

func TestResultLifecycle(t *testing.T) {
	p := openManual(t, staticConfig([]string{epA, epB}, `"failurePenalty":"1h"`))
	publish(t, p, epA, metrics.Sample{Waiting: 0})
	publish(t, p, epB, metrics.Sample{Waiting: 2})

	var res Result
	p.Pick(&Request{}, &res)
	require.Equal(t, "10.0.0.1:8000,10.0.0.2:8000", res.Header())
	require.Equal(t, "x=10.0.0.1:8000,10.0.0.2:8000", string(res.AppendHeader([]byte("x="))))

	// Envoy retried on B, which then failed; A, walked past, failed first.
	res.Served(epB)
	require.Zero(t, target(t, p, epA).InFlight())
	require.Equal(t, int64(1), target(t, p, epB).InFlight())
	res.Served("10.9.9.9:1") // unknown: ignored
	res.Done(OutcomeFailed)
	res.Done(OutcomeFailed) // idempotent
	require.Zero(t, target(t, p, epB).InFlight())
	require.Equal(t, uint64(1), target(t, p, epB).Stats().Failures)
	require.Equal(t, uint64(1), target(t, p, epA).Stats().Failures)

	// A served on the next try: it is healthy again as far as this test
	// goes (a fresh pool without A's failure).
	p = openManual(t, staticConfig([]string{epA, epB}, `"failurePenalty":"1h"`))
	publish(t, p, epA, metrics.Sample{Waiting: 0})
	publish(t, p, epB, metrics.Sample{Waiting: 2})
	p.Pick(&Request{}, &res)
	res.Done(OutcomeOK)
	p.Pick(&Request{}, &res)
	require.Equal(t, epA, res.Endpoints()[0])
	res.Done(OutcomeFailed)
	require.Zero(t, target(t, p, epB).Stats().Failures)

	// A is penalized now, so even an idle A is not picked first.
	publish(t, p, epA, metrics.Sample{})
	publish(t, p, epB, metrics.Sample{Waiting: 3})
	p.Pick(&Request{}, &res)
	require.Equal(t, []string{epB}, res.Endpoints())

	// Reusing a Result without Done does not leak an in-flight count.
	p.Pick(&Request{}, &res)
	require.Equal(t, int64(1), target(t, p, epB).InFlight())
	res.Done(OutcomeOK)

	st := p.Stats()
	require.Equal(t, uint64(4), st.Picks)
	require.Equal(t, 1, st.Penalized)
	require.Equal(t, 1, st.Ready)
}

func TestStats(t *testing.T) {
	p := openManual(t, staticConfig([]string{epA, epB, epC, epD}, `"priorities":{"batch":-1}`))
	publish(t, p, epA, metrics.Sample{Waiting: 1})
	publish(t, p, epB, metrics.Sample{Waiting: 9})
	publish(t, p, epC, metrics.Sample{At: collector.Now() - int64(time.Minute)})

	st := p.Stats()
	require.Equal(t, 4, st.Endpoints)
	require.Equal(t, 1, st.Ready)
	require.Equal(t, 2, st.Saturated) // B by queue, C stale
	require.Equal(t, 1, st.Unhealthy) // D never scraped
	require.Equal(t, "static", st.Source.Kind)

	var res Result
	p.Pick(&Request{HasSubset: true}, &res)
	require.Equal(t, StatusNoCapacity, res.Status)
	p.Pick(&Request{Objective: "batch", Subset: []string{epB, epC}, HasSubset: true}, &res)
	require.Equal(t, StatusShed, res.Status)
	p.Pick(&Request{Subset: []string{epD}, HasSubset: true}, &res) // blind, inside the hint
	require.Equal(t, StatusOK, res.Status)
	require.Equal(t, []string{epD}, res.Endpoints())
	res.Done(OutcomeOK)
	p.Pick(&Request{}, &res)
	require.Equal(t, StatusOK, res.Status)
	res.Done(OutcomeOK)

	st = p.Stats()
	require.Equal(t, uint64(2), st.Picks)
	require.Equal(t, uint64(1), st.Sheds)
	require.Equal(t, uint64(1), st.NoCapacity)
	require.Equal(t, uint64(1), st.NoMetrics)
	byAddr := map[string]EndpointStats{}
	for _, e := range st.PerEndpoint {
		byAddr[e.Addr] = e
	}
	require.Equal(t, uint64(1), byAddr[epA].Picks)
	require.True(t, byAddr[epB].Saturated)
	require.True(t, byAddr[epC].Stale)
	require.False(t, byAddr[epD].Healthy)
}

// A fail-open pool whose hinted endpoints have no metrics picks inside the
// hint, never leaving the request to Envoy's fallback, which would pick
// outside it: fewest in flight first, up to the list length. Fail-close
// answers 503.
func TestPickSubsetHintWithoutMetrics(t *testing.T) {
	all := []string{epA, epB, epC, epD}
	hint := Request{Subset: []string{epB, epC, epD, "10.9.9.9:80"}, HasSubset: true}
	t.Run("fail-open", func(t *testing.T) {
		p := openManual(t, staticConfig(all, `"scheduler":{"maxEndpoints":2}`))
		publish(t, p, epA, metrics.Sample{}) // the only endpoint with metrics is outside the hint
		seen := map[string]int{}
		var held []*Result
		for i := 0; i < 30; i++ {
			res := &Result{}
			p.Pick(&hint, res)
			require.Equal(t, StatusOK, res.Status)
			require.Len(t, res.Endpoints(), 2, "the pool's maxEndpoints")
			for _, e := range res.Endpoints() {
				require.Contains(t, hint.Subset, e)
			}
			seen[res.Endpoints()[0]]++
			if i < 3 {
				held = append(held, res) // three in flight, one on each hinted endpoint
				continue
			}
			res.Done(OutcomeOK)
		}
		require.Len(t, seen, 3, "ties in a random order: the load spreads over the hint")
		for _, e := range []string{epB, epC, epD} {
			require.EqualValues(t, 1, target(t, p, e).InFlight())
		}
		target(t, p, epC).Fail() // failures do not matter blind; in-flight counts do
		held[0].Done(OutcomeOK)
		freed := ""
		for _, e := range []string{epB, epC, epD} {
			if target(t, p, e).InFlight() == 0 {
				freed = e
			}
		}
		var res Result
		p.Pick(&hint, &res)
		require.Equal(t, freed, res.Endpoints()[0], "the fewest in flight first")
		res.Done(OutcomeOK)
		for _, r := range held[1:] {
			r.Done(OutcomeOK)
		}
	})
	t.Run("ties spread evenly over the hint", func(t *testing.T) {
		// Two hinted members after one that is not: a random start over
		// all members would give the first of them three picks in four.
		p := openManual(t, staticConfig(all, ""))
		publish(t, p, epA, metrics.Sample{})
		pair := Request{Subset: []string{epB, epC}, HasSubset: true}
		seen := map[string]int{}
		const picks = 400
		for range picks {
			var res Result
			p.Pick(&pair, &res)
			require.Equal(t, StatusOK, res.Status)
			seen[res.Endpoints()[0]]++
			res.Done(OutcomeOK)
		}
		for _, e := range pair.Subset {
			require.Greater(t, seen[e], picks*35/100, "%v", seen) // even: 200 each; 4.3 standard deviations to 140
		}
	})
	t.Run("fail-close", func(t *testing.T) {
		p := openManual(t, staticConfig(all, `"failureMode":"fail-close"`))
		publish(t, p, epA, metrics.Sample{})
		var res Result
		p.Pick(&hint, &res)
		require.Equal(t, StatusNoMetrics, res.Status)
		require.Empty(t, res.Endpoints())
	})
}

// The pool's stats take what plugins report (framework.StatsReporter): the
// learned index's size in learned mode, nothing in rendezvous mode.
func TestStatsFromPlugins(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		entries     bool
	}{
		{name: "learned", extra: `"prefix":{"mode":"learned"}`, entries: true},
		{name: "rendezvous", extra: `"prefix":{"mode":"rendezvous"}`},
		{name: "no prefix scorer", extra: `"scheduler":{"scorers":[{"type":"queue"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := openManual(t, staticConfig([]string{epA, epB}, tc.extra))
			publish(t, p, epA, metrics.Sample{})
			publish(t, p, epB, metrics.Sample{})
			var res Result
			p.Pick(&Request{Model: "m", Prompt: chatPrompt("system", "user", 1024)}, &res)
			require.Equal(t, StatusOK, res.Status)
			res.Done(OutcomeOK)
			flushPrefixIndex(p)
			st := p.Stats()
			if tc.entries {
				require.Equal(t, int64(1024/64), st.PrefixEntries, "one entry per block of the prompt")
			} else {
				require.Zero(t, st.PrefixEntries)
			}
			require.Zero(t, st.PrefixDropped)
		})
	}
}
