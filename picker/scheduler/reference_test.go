package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/filter/saturation"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/picker/maxscore"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/inflight"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/kvcache"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/loraaffinity"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/queue"
)

// The plugins as they were before scorers added their weighted scores to
// the sum themselves (framework.WeightedScorer) and the saturation filter
// handed its queue bounds on (Cycle.QueueBounds), kept verbatim as the
// reference. They only Score, so the pipeline sums their partial scores
// the old way. The prefix scorer is compared with its own reference in its
// package (TestAddScoreMatchesReference); here it is used through Score.

type refSaturation struct{ f *saturation.Filter }

func (refSaturation) Name() string { return "ref-saturation" }
func (r refSaturation) Filter(_ *framework.Cycle, eps []framework.Endpoint) int {
	k := 0
	for i := range eps {
		if !r.f.Saturated(&eps[i]) {
			if i != k {
				eps[k], eps[i] = eps[i], eps[k]
			}
			k++
		}
	}
	return k
}

type refQueue struct{}

func (refQueue) Name() string { return "ref-queue" }
func (refQueue) Score(_ *framework.Cycle, eps []framework.Endpoint, out []float64) {
	out = out[:len(eps)]
	var lo, hi float64
	for i := range eps {
		q := eps[i].Queue()
		out[i] = q
		if i == 0 || q < lo {
			lo = q
		}
		if i == 0 || q > hi {
			hi = q
		}
	}
	if hi == lo {
		for i := range out {
			out[i] = 1
		}
		return
	}
	for i, q := range out {
		out[i] = (hi - q) / (hi - lo)
	}
}

type refKV struct{}

func (refKV) Name() string { return "ref-kv" }
func (refKV) Score(_ *framework.Cycle, eps []framework.Endpoint, out []float64) {
	for i := range eps {
		out[i] = 1 - eps[i].KVUsage
	}
}

type refInFlight struct{}

func (refInFlight) Name() string { return "ref-in-flight" }
func (refInFlight) Score(_ *framework.Cycle, eps []framework.Endpoint, out []float64) {
	var lo, hi float64
	for i := range eps {
		n := eps[i].InFlight
		if i == 0 || n < lo {
			lo = n
		}
		if i == 0 || n > hi {
			hi = n
		}
	}
	for i := range eps {
		if hi == lo {
			out[i] = 1
			continue
		}
		out[i] = (hi - eps[i].InFlight) / (hi - lo)
	}
}

type refLoRA struct{}

func (refLoRA) Name() string { return "ref-lora" }
func (refLoRA) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	model, key := c.Request.Model, c.Request.ModelKey
	for i := range eps {
		var l *metrics.LoRA = eps[i].LoRA
		switch {
		case l == nil || model == "":
			out[i] = 0
		case l.IsRunning(model, key):
			out[i] = loraaffinity.Running
		case l.HasRoom():
			out[i] = loraaffinity.Room
		case l.IsWaiting(model, key):
			out[i] = loraaffinity.Waiting
		default:
			out[i] = 0
		}
	}
}

// scoreOnly hides every method of a scorer but Score.
type scoreOnly struct{ s framework.Scorer }

func (s scoreOnly) Name() string { return s.s.Name() }
func (s scoreOnly) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	s.s.Score(c, eps, out)
}

// TestScheduleMatchesReference runs the default profile (plus in-flight)
// and its reference on the same randomized snapshots and compares the
// sums bit for bit and the whole ranking (k = every candidate, so every
// tie counts), for each prefix mode.
func TestScheduleMatchesReference(t *testing.T) {
	adapters := []string{"", "a1", "a2", "a3"}
	for _, mode := range []string{prefix.Learned, prefix.Rendezvous} {
		t.Run(mode, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			cfg := prefix.Defaults
			cfg.Mode, cfg.LRUCapacity = mode, 500
			px, err := prefix.New(cfg)
			require.NoError(t, err)
			t.Cleanup(px.Close)
			sat := saturation.New(saturation.Defaults)
			weights := []float64{2, 2, 3, 1, 0.5}
			newProfile := func(k int) *Profile {
				return NewProfile([]framework.Filter{sat},
					[]Weighted{{queue.New(), weights[0]}, {kvcache.New(), weights[1]}, {px, weights[2]}, {loraaffinity.New(), weights[3]}, {inflight.New(), weights[4]}},
					maxscore.New(), k)
			}
			refProfile := func(k int) *Profile {
				return NewProfile([]framework.Filter{refSaturation{sat}},
					[]Weighted{{refQueue{}, weights[0]}, {refKV{}, weights[1]}, {scoreOnly{px}, weights[2]}, {refLoRA{}, weights[3]}, {refInFlight{}, weights[4]}},
					maxscore.New(), k)
			}
			all := make([]framework.Endpoint, 60)
			for i := range all {
				addr := fmt.Sprintf("10.0.0.%d:8000", i+1)
				all[i] = framework.Endpoint{Addr: addr, Key: xxhash.Sum64String(addr), ID: int32(i), Member: int32(i)}
			}
			var bNew, bRef Buffers
			sheds, scored := 0, 0
			for round := range 500 {
				model := adapters[rng.IntN(len(adapters))]
				prompt := []byte(fmt.Sprintf(`[{"role":"system","content":"%s"},{"role":"user","content":"%s"}]`,
					strings.Repeat(fmt.Sprint("system ", rng.IntN(4), " "), 20+rng.IntN(40)), strings.Repeat("q", rng.IntN(300))))
				eps := make([]framework.Endpoint, 0, len(all))
				for _, i := range rng.Perm(len(all))[:1+rng.IntN(len(all))] {
					e := all[i]
					e.Waiting, e.Running, e.Pending = float64(rng.IntN(6)), float64(rng.IntN(8)), float64(rng.IntN(3))
					e.Capacity = float64(rng.IntN(2) * 6)
					e.KVUsage = float64(rng.IntN(10)) / 10
					e.InFlight = float64(rng.IntN(4))
					e.Stale = rng.IntN(20) == 0
					if rng.IntN(3) > 0 {
						e.LoRA = metrics.NewLoRA([]string{adapters[1+rng.IntN(3)]}, []string{adapters[1+rng.IntN(3)]}, 1+rng.IntN(3))
						if rng.IntN(2) == 0 { // as the pool builds it; without, the plugins ask LoRA
							e.LoRAHint = e.LoRA.Hint()
						}
					}
					eps = append(eps, e)
				}
				priority := rng.IntN(3) - 1
				seed := rng.Uint64()
				run := func(p *Profile, b *Buffers) ([]int32, bool) {
					c := &framework.Cycle{}
					c.Reset(&framework.Request{Model: model, ModelKey: metrics.Key(model), Prompt: prompt, Priority: priority}, 0, seed)
					return p.Schedule(c, append([]framework.Endpoint(nil), eps...), b, nil)
				}
				run(refProfile(len(eps)), &bRef) // the prefix scorer sees the key: its first request goes by load
				want, wantShed := run(refProfile(len(eps)), &bRef)
				got, gotShed := run(newProfile(len(eps)), &bNew) // records the pick in the learned index
				require.Equal(t, wantShed, gotShed, "round %d", round)
				require.Equal(t, want, got, "round %d", round)
				if !gotShed {
					require.Equal(t, bRef.scores, bNew.scores, "round %d: the sums, bit for bit", round)
				}
				if gotShed {
					sheds++
				} else {
					scored++
				}
				if idx := px.Index(); idx != nil {
					idx.Flush()
				}
			}
			require.NotZero(t, sheds, "the snapshots reach the shed path")
			require.Greater(t, scored, 400)
		})
	}
}
