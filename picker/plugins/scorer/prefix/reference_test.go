package prefix

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// refScore is the scorer's Score before it added its weighted score to the
// sum itself (AddScore) and took the queues and the shortest from the
// cycle, kept verbatim (main ecbc5d0) as the reference, rendezvous choice
// included.
func refScore(s *Scorer, c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out)
	if len(eps) == 0 {
		return
	}
	if s.index != nil {
		refScoreLearned(s, c, eps, out)
	} else if i := refRendezvousChoice(s, c, eps, refLimitsOf(s, eps)); i >= 0 {
		out[i] = 1
	}
}

type refLimits struct {
	queue float64
	load  float64
}

func (l *refLimits) within(e *framework.Endpoint) bool {
	return e.Queue() <= l.queue && (e.Running+e.Waiting+e.Pending) <= l.load
}

func refLimitsOf(s *Scorer, eps []framework.Endpoint) refLimits {
	shortest := eps[0].Queue()
	for i := 1; i < len(eps); i++ {
		shortest = min(shortest, eps[i].Queue())
	}
	l := refLimits{queue: shortest + s.queueSlack, load: math.Inf(1)}
	if b := s.p.LoadBound; b > 0 {
		var sum float64
		for i := range eps {
			sum += eps[i].Running + eps[i].Waiting + eps[i].Pending
		}
		l.load = b*sum/float64(len(eps)) + 1
	}
	return l
}

func refScoreLearned(s *Scorer, c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	hashes := AppendHashes(nil, c.Request.ModelKey, c.Request.Prompt, s.p.BlockSize, s.p.MaxBlocks)
	n := len(hashes)
	if n == 0 {
		return
	}
	slots := c.Slots(eps)
	unscored := func(k int) bool {
		return s.index.Holders(hashes[k], func(id int32) bool {
			i := slots.Of(id)
			return i < 0 || out[i] != 0
		})
	}
	for hi := n; hi > 0 && unscored(0); {
		lo, up := 0, hi
		for up-lo > 1 {
			mid := int(uint(lo+up) >> 1)
			if unscored(mid) {
				lo = mid
			} else {
				up = mid
			}
		}
		s.index.Holders(hashes[lo], func(id int32) bool {
			if i := slots.Of(id); i >= 0 && out[i] == 0 {
				out[i] = float64(lo + 1)
			}
			return true
		})
		hi = lo
	}
	limit := refLimitsOf(s, eps)
	for i := range eps {
		if !limit.within(&eps[i]) {
			out[i] = 0
		} else {
			out[i] /= float64(n)
		}
	}
	if f := s.floor; f > 0 {
		if i := refRendezvousChoice(s, c, eps, limit); i >= 0 {
			out[i] = max(out[i], f)
		}
	}
}

// TestAddScoreMatchesReference: for random indexes, candidates, loads,
// adapters and prompts, in every mode and with the knobs that change the
// score, AddScore adds exactly (bit for bit) weight × the reference score
// to each sum, and Score writes the reference score.
func TestAddScoreMatchesReference(t *testing.T) {
	configs := []Config{
		{Mode: Learned},
		{Mode: Learned, RendezvousFloor: new(0.5), LoadBound: 1.5, QueueSlack: new(2.0)},
		{Mode: Learned, RendezvousFloor: new(1.0), BlockSize: 32, LRUCapacity: 20},
		{Mode: Rendezvous},
		{Mode: Rendezvous, LoadBound: 2, QueueSlack: new(0.0)},
		{Mode: InferenceExtension},
	}
	adapters := []string{"a0", "a1", "a2"}
	for ci, cfg := range configs {
		t.Run(fmt.Sprintf("%d-%s", ci, cfg.Mode), func(t *testing.T) {
			cfg.SetDefaults()
			s, err := New(cfg)
			require.NoError(t, err)
			t.Cleanup(s.Close)
			rng := rand.New(rand.NewPCG(uint64(ci), 99))
			all := endpoints(24)
			prompt := func() []byte {
				system := blocks(1+rng.IntN(12), fmt.Sprint("tenant ", rng.IntN(4)))
				return append(system, blocks(rng.IntN(8), fmt.Sprint("user ", rng.IntN(50)))...)
			}
			for round := range 600 {
				// Teach the index where some prompts went.
				if s.index != nil {
					for range rng.IntN(4) {
						s.Picked(cycle(adapters[rng.IntN(3)], prompt()), &all[rng.IntN(len(all))])
					}
					s.index.Flush()
				}
				// A random subset of candidates with random loads.
				var eps []framework.Endpoint
				for _, e := range all {
					if rng.IntN(4) == 0 {
						continue
					}
					e.Waiting, e.Running, e.Pending = float64(rng.IntN(4)), float64(rng.IntN(6)), float64(rng.IntN(3))
					if rng.IntN(2) == 0 {
						e.Capacity = float64(2 + rng.IntN(4))
					}
					if rng.IntN(2) == 0 {
						e.LoRA = metrics.NewLoRA(adapters[:rng.IntN(4)], nil, 2)
					}
					eps = append(eps, e)
				}
				c := cycle(adapters[rng.IntN(3)], prompt())
				if rng.IntN(10) == 0 {
					c = cycle("a0", []byte("short"))
				}
				want := make([]float64, len(eps))
				// The reference predates seenKeys: score once so the key
				// is seen, and the three calls below agree.
				s.Score(c, eps, want)
				c.Reset(c.Request, 0, 1)
				refScore(s, c, eps, want)

				weight := float64(1+rng.IntN(4)) / 2
				base := make([]float64, len(eps))
				for i := range base {
					base[i] = float64(rng.IntN(8)) / 3
				}
				sum := append([]float64(nil), base...)
				c.Reset(c.Request, 0, 1) // a fresh cycle: no cached bounds
				s.AddScore(c, eps, weight, sum)
				for i := range sum {
					require.Equal(t, math.Float64bits(base[i]+weight*want[i]), math.Float64bits(sum[i]), "round %d, endpoint %d", round, i)
				}
				got := make([]float64, len(eps))
				c.Reset(c.Request, 0, 1)
				s.Score(c, eps, got)
				require.Equal(t, want, got, "round %d", round)
			}
		})
	}
}

func refRendezvousChoice(s *Scorer, c *framework.Cycle, eps []framework.Endpoint, limit refLimits) int {
	req := c.Request
	bs := s.p.BlockSize
	d := min(s.p.RendezvousBlocks, s.p.MaxBlocks, len(req.Prompt)/bs)
	if end := firstElementEnd(req.Prompt, d*bs); end > 0 {
		d = min(d, max(1, end/bs))
	}
	if d == 0 {
		return -1
	}
	key := chainHash(req.ModelKey, req.Prompt, bs, d)

	// A LoRA adapter's prefix can only be reused where the adapter runs: when
	// some candidate runs it, only those may be preferred, or affinity
	// would pull the adapter onto servers that must first load it. One pass
	// finds both the preferred endpoint and the preferred runner, reading
	// the adapter lists of the endpoints within the queue limit only.
	best, runner := -1, -1
	var bestWeight, runnerWeight uint64
	for i := range eps {
		if !limit.within(&eps[i]) {
			continue
		}
		w := framework.Mix(key ^ eps[i].Key)
		if best < 0 || w > bestWeight {
			best, bestWeight = i, w
		}
		if runs(eps[i].LoRA, req) && (runner < 0 || w > runnerWeight) {
			runner, runnerWeight = i, w
		}
	}
	switch {
	case runner >= 0:
		return runner
	case best >= 0 && !refRunsBeyond(eps, limit, req):
		return best
	}
	return -1
}

// refRunsBeyond reports whether an endpoint whose queue is over limit runs the
// requested adapter: then none within the limit may be preferred.
func refRunsBeyond(eps []framework.Endpoint, limit refLimits, req *framework.Request) bool {
	for i := range eps {
		if !limit.within(&eps[i]) && runs(eps[i].LoRA, req) {
			return true
		}
	}
	return false
}

// runs is the reference's adapter check, as the scorer had it.
func runs(l *metrics.LoRA, req *framework.Request) bool {
	return l.IsRunning(req.Model, req.ModelKey)
}
