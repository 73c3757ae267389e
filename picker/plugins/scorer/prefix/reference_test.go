package prefix

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// The scorer's code before it added its weighted score to the sum itself
// (AddScore) and took the shortest queue from the cycle, kept verbatim as
// the reference: AddScore must add exactly weight × what it wrote.

func oldScore(s *Scorer, c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out)
	if len(eps) == 0 {
		return
	}
	if s.index != nil {
		oldScoreLearned(s, c, eps, out)
	} else {
		oldScoreRendezvous(s, c, eps, out)
	}
}

func oldQueueLimit(s *Scorer, eps []framework.Endpoint) float64 {
	shortest := eps[0].Queue()
	for i := 1; i < len(eps); i++ {
		shortest = min(shortest, eps[i].Queue())
	}
	return shortest + s.queueSlack
}

func oldScoreLearned(s *Scorer, c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	hashes := s.hashes(c)
	n := len(hashes)
	if n == 0 {
		return
	}
	slots := c.Slots(eps)
	// out holds match lengths (0: none yet) until the final normalization.
	unscored := func(k int) bool {
		return s.index.Holders(hashes[k], func(id int32) bool {
			i := slots.Of(id)
			return i < 0 || out[i] != 0
		})
	}
	for hi := n; hi > 0 && unscored(0); {
		lo, up := 0, hi // unscored(lo) holds; unscored(up) does not or up is the bound
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
	limit := oldQueueLimit(s, eps)
	for i := range eps {
		if eps[i].Queue() > limit {
			out[i] = 0
		} else {
			out[i] /= float64(n)
		}
	}
}

// scoreRendezvous gives 1 to the endpoint that rendezvous hashing of the
// prompt's leading blocks prefers among those within the queue limit.
//
// The key covers at most RendezvousBlocks blocks, and for chat messages no
// more than the first message (the system prompt) when it is shorter: the key
// must be the part many requests share, not the part that makes each unique.
func oldScoreRendezvous(s *Scorer, c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	req := c.Request
	bs := s.p.BlockSize
	d := min(s.p.RendezvousBlocks, s.p.MaxBlocks, len(req.Prompt)/bs)
	if end := firstElementEnd(req.Prompt, d*bs); end > 0 {
		d = min(d, max(1, end/bs))
	}
	if d == 0 {
		return
	}
	key := chainHash(req.ModelKey, req.Prompt, bs, d)

	// A LoRA adapter's prefix can only be reused where the adapter runs: when
	// some candidate runs it, only those may be preferred, or affinity
	// would pull the adapter onto servers that must first load it. One pass
	// finds both the preferred endpoint and the preferred runner, reading
	// the adapter lists of the endpoints within the queue limit only.
	limit := oldQueueLimit(s, eps)
	best, runner := -1, -1
	var bestWeight, runnerWeight uint64
	for i := range eps {
		if eps[i].Queue() > limit {
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
		out[runner] = 1
	case best >= 0 && !runsBeyond(eps, limit, req):
		out[best] = 1
	}
}

// TestAddScoreMatchesReference compares AddScore with the reference on
// randomized candidate lists: queues, slots, adapters, index contents,
// weights, both modes. Sums must be equal bit for bit.
func TestAddScoreMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	systems := []string{"alpha", "beta", "gamma"}
	adapters := []string{"", "a1", "a2"}
	for _, mode := range []string{Learned, Rendezvous} {
		t.Run(mode, func(t *testing.T) {
			cfg := Defaults
			cfg.Mode, cfg.LRUCapacity = mode, 200
			cfg.QueueSlack = new(float64(rng.IntN(3)))
			s, err := New(cfg)
			require.NoError(t, err)
			t.Cleanup(s.Close)
			all := endpoints(40)
			for round := range 300 {
				model := adapters[rng.IntN(len(adapters))]
				prompt := chat(systems[rng.IntN(len(systems))]+string(blocks(rng.IntN(4), "sys")), fmt.Sprint("user ", rng.IntN(5), string(blocks(rng.IntN(3), "u"))))
				// A random subset, in random order, with random load.
				eps := make([]framework.Endpoint, 0, len(all))
				for _, i := range rng.Perm(len(all))[:1+rng.IntN(len(all))] {
					e := all[i]
					e.Waiting, e.Running, e.Pending = float64(rng.IntN(4)), float64(rng.IntN(8)), float64(rng.IntN(3))
					e.Capacity = float64(rng.IntN(2) * 6)
					if rng.IntN(3) > 0 {
						e.LoRA = metrics.NewLoRA([]string{adapters[1+rng.IntN(2)]}, nil, 2)
					}
					eps = append(eps, e)
				}
				ref := make([]float64, len(eps))
				oldScore(s, cycle(model, prompt), eps, ref)
				weight := []float64{1, 3, 0.7}[rng.IntN(3)]
				want, got := make([]float64, len(eps)), make([]float64, len(eps))
				for i := range eps {
					want[i] = float64(rng.IntN(5)) / 3
					got[i] = want[i]
					want[i] += weight * ref[i]
				}
				c := cycle(model, prompt)
				s.AddScore(c, eps, weight, got)
				require.Equal(t, want, got, "round %d", round)
				// Learn where this prompt went, as a pick would.
				if s.index != nil && len(c.Hashes) > 0 {
					s.index.Record(eps[rng.IntN(len(eps))].ID, c.Hashes)
					s.index.Flush()
				}
			}
		})
	}
}
