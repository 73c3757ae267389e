package picker

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// TestKeptCandidatesMatchFreshOnes builds the candidates on one cycle
// state, as a worker's picks do, and on a new one (nothing to keep) after
// random changes: new, stale, missing and shared samples, failures,
// requests in flight, subset hints, membership changes, and schedules
// whose filter drops and moves candidates. Both must be the same, field
// for field.
func TestKeptCandidatesMatchFreshOnes(t *testing.T) {
	all := addrs(12)
	p := openManual(t, staticConfig(all, `"scrape":{"interval":"100ms","staleAfter":"200ms"},"failurePenalty":"1h"`))
	rng := rand.New(rand.NewPCG(7, 11))
	adapters := []string{"", "a", "b", "c"}
	lora := func() *metrics.LoRA {
		if rng.IntN(4) == 0 {
			return nil
		}
		return metrics.NewLoRA([]string{adapters[1+rng.IntN(3)]}, []string{adapters[1+rng.IntN(3)]}, 1+rng.IntN(3))
	}
	sample := func() *metrics.Sample {
		s := &metrics.Sample{
			Waiting: float64(rng.IntN(4)), Running: float64(rng.IntN(8)), KVUsage: float64(rng.IntN(8)) / 10,
			LoRA: lora(), BlockSize: 16, NumGPUBlocks: rng.IntN(3) * 100,
			At: collector.Now() - int64(rng.IntN(100))*1e6,
		}
		switch rng.IntN(30) {
		case 0:
			s.Waiting = 6 // saturated: the filter drops it and moves the rest
		case 1:
			s.At -= 300e6 // stale
		}
		return s
	}
	for _, a := range all {
		target(t, p, a).Publish(sample())
	}
	st := &cycleState{}
	kept, moved := 0, 0
	for step := range 3000 {
		v := p.view.Load()
		members := v.members
		switch r := rng.IntN(20); {
		case r < 8: // a scrape lands
			members[rng.IntN(len(members))].target.Publish(sample())
		case r < 9: // two endpoints handed the same Sample
			s := sample()
			members[rng.IntN(len(members))].target.Publish(s)
			members[rng.IntN(len(members))].target.Publish(s)
		case r < 10: // unusable metrics
			members[rng.IntN(len(members))].target.Publish(nil)
		case r < 11 && rng.IntN(4) == 0: // penalized for the rest of the test
			members[rng.IntN(len(members))].target.Fail()
		case r < 13:
			members[rng.IntN(len(members))].target.Start()
		case r < 14: // the endpoint set changes
			set := append([]string(nil), all...)
			rng.Shuffle(len(set), func(i, j int) { set[i], set[j] = set[j], set[i] })
			p.setEndpoints(set[:4+rng.IntN(len(set)-4)])
			for _, m := range p.view.Load().members {
				if m.target.Sample() == nil && rng.IntN(2) == 0 {
					m.target.Publish(sample())
				}
			}
		}
		v = p.view.Load()
		req := Request{Model: adapters[rng.IntN(len(adapters))], Prompt: []byte(`[{"role":"user","content":"hi"}]`)}
		if rng.IntN(5) == 0 {
			req.HasSubset = true
			for range 1 + rng.IntN(4) {
				req.Subset = append(req.Subset, all[rng.IntN(len(all))])
			}
		}
		fresh := &cycleState{}
		if req.HasSubset && (!st.markHint(v, req.Subset) || !fresh.markHint(v, req.Subset)) {
			continue
		}
		if st.kept.valid > 0 && st.kept.view == v {
			kept++
		}
		now := collector.Now()
		eps, held, load, own := p.candidates(st, v, &req, now)
		wantEps, wantHeld, wantLoad, wantOwn := p.candidates(fresh, v, &req, now)
		require.Equal(t, append([]framework.Endpoint{}, wantEps...), append([]framework.Endpoint{}, eps...), "step %d", step)
		require.Equal(t, append([]framework.Endpoint{}, wantHeld...), append([]framework.Endpoint{}, held...), "step %d", step)
		require.Equal(t, wantLoad, load, "step %d", step)
		require.Equal(t, wantOwn, own, "step %d", step)

		if len(eps) == 0 {
			eps = held
		}
		if len(eps) == 0 {
			continue
		}
		st.req = framework.Request{Model: req.Model, ModelKey: metrics.Key(req.Model), Prompt: req.Prompt, Priority: rng.IntN(3) - 1}
		st.cycle.Reset(&st.req, now, rng.Uint64())
		st.schedule(p.profile, eps, nil)
		if st.buf.Moved {
			moved++
		}
	}
	require.Greater(t, kept, 500, "builds that could keep candidates")
	require.Greater(t, moved, 200, "schedules that moved them")
}

// TestKeptCandidatesNotKeptAfterAMove: after a filter moved the
// candidates, a position's struct is another member's, and it must not be
// kept even when that member now holds the Sample the position was built
// from (here: a Sample handed to a second target later).
func TestKeptCandidatesNotKeptAfterAMove(t *testing.T) {
	eps3 := addrs(3)
	p := openManual(t, staticConfig(eps3, `"scrape":{"interval":"1h"}`))
	a, b, c := target(t, p, eps3[0]), target(t, p, eps3[1]), target(t, p, eps3[2])
	sa := &metrics.Sample{Waiting: 9, At: collector.Now()} // saturated: the filter moves b and c forward
	a.Publish(sa)
	b.Publish(&metrics.Sample{Waiting: 1, At: collector.Now()})
	c.Publish(&metrics.Sample{Waiting: 2, At: collector.Now()})

	st := &cycleState{}
	req := Request{}
	v := p.view.Load()
	eps, _, _, _ := p.candidates(st, v, &req, collector.Now())
	st.req = framework.Request{}
	st.cycle.Reset(&st.req, collector.Now(), 1)
	st.schedule(p.profile, eps, nil)
	require.True(t, st.buf.Moved)
	require.Equal(t, int32(1), st.eps[0].Member, "b moved to where a was built")

	a.Publish(nil) // b is at position 0 again
	b.Publish(sa)  // with the Sample position 0 was built from
	eps, _, _, _ = p.candidates(st, v, &req, collector.Now())
	require.Equal(t, int32(1), eps[0].Member)
	require.Equal(t, 9.0, eps[0].Waiting, "b's numbers from its new sample")
}
