// Package prefix scores endpoints by how much of the request's prompt prefix
// they are likely to have in their KV cache, in one of two modes:
//
//   - learned: the Inference Extension's prefix-cache scorer. Each endpoint
//     has an LRU of the block hashes of the requests this proxy sent it;
//     the score is the fraction of the prompt's leading blocks it holds.
//   - rendezvous: rendezvous (highest-random-weight) hashing of the leading
//     blocks names a preferred endpoint. Every proxy computes the same
//     preference from the prompt and the endpoint addresses alone, so
//     independent proxies send a shared prefix to the same server without
//     sharing any state.
//
// In both modes affinity yields to load: an endpoint whose queue is more
// than QueueSlack requests longer than the shortest queue among the
// candidates gets no prefix score, so a popular prefix spills to the next
// server instead of piling up on one (DESIGN.md section 6).
package prefix

import (
	"fmt"
	"math"
	"strings"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

// Type names the plugin in configuration.
const Type = "prefix-cache"

// Modes.
const (
	Learned    = "learned"
	Rendezvous = "rendezvous"
	// InferenceExtension is the Inference Extension's prefix-cache scorer
	// exactly: learned mode with an LRU of lruCapacity (31,250) blocks per
	// endpoint whatever the server's cache, and unconditional affinity
	// (no queueSlack, no rendezvousFloor).
	InferenceExtension = "inference-extension"
)

// Scorer is the prefix-cache scorer. In learned mode it owns an Index and a
// goroutine: Close it.
type Scorer struct {
	p          Config
	queueSlack float64
	floor      float64   // learned: the rendezvous choice's least score
	seen       *seenKeys // rendezvous keys seen: rendezvous mode, or a floor
	index      *Index    // learned mode only
}

// New returns a scorer for c, which must be valid (see Config.Validate;
// SetDefaults fills what is left out).
func New(c Config) (*Scorer, error) {
	var errs []string
	c.Validate(func(field, msg string) { errs = append(errs, field+": "+msg) })
	if len(errs) > 0 {
		return nil, fmt.Errorf("prefix: %s", strings.Join(errs, "; "))
	}
	s := &Scorer{p: c, queueSlack: *c.QueueSlack, floor: *c.RendezvousFloor}
	if c.Mode == Rendezvous || (c.Mode == Learned && s.floor > 0) {
		s.seen = new(seenKeys)
	}
	switch c.Mode {
	case Learned:
		s.index = NewIndex(int(c.capacity(0)))
	case InferenceExtension:
		s.p.LRUCapacity = int(c.capacity(0)) // the override, else the fallback: never the geometry
		s.floor = 0
		s.queueSlack = math.Inf(1)
		s.index = NewIndex(s.p.LRUCapacity)
	}
	return s, nil
}

// Name implements framework.Scorer.
func (*Scorer) Name() string { return Type }

// Index returns the learned index, nil in rendezvous mode.
func (s *Scorer) Index() *Index { return s.index }

// ReportStats implements framework.StatsReporter: the learned index's size
// and what it dropped.
func (s *Scorer) ReportStats(st *framework.PluginStats) {
	if s.index != nil {
		st.PrefixEntries = s.index.Entries()
		st.PrefixDropped = s.index.Dropped()
	}
}

// Close stops the learned index's writer.
func (s *Scorer) Close() {
	if s.index != nil {
		s.index.Close()
	}
}

// Score implements framework.Scorer.
func (s *Scorer) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out[:len(eps)])
	s.AddScore(c, eps, 1, out)
}

// AddScore implements framework.WeightedScorer: the prefix score, times
// weight, is added to each endpoint's sum in the pass that applies the
// limits, with no buffer of scores in between.
func (s *Scorer) AddScore(c *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	if len(eps) == 0 {
		return
	}
	sum = sum[:len(eps)]
	if s.index != nil {
		s.scoreLearned(c, eps, weight, sum)
	} else {
		s.scoreRendezvous(c, eps, weight, sum)
	}
}

// Picked implements framework.PickObserver: in learned mode the endpoint now
// holds the prompt's blocks, in a cache of the size it reports.
func (s *Scorer) Picked(c *framework.Cycle, ep *framework.Endpoint) {
	if s.index == nil {
		return
	}
	if h := s.hashes(c); len(h) > 0 {
		s.index.Record(ep.ID, s.p.capacity(ep.CacheTokens), h)
	}
}

// Forget implements framework.Forgetter: an endpoint left the pool.
func (s *Scorer) Forget(id int32) {
	if s.index != nil {
		s.index.Forget(id)
	}
}

func (s *Scorer) hashes(c *framework.Cycle) []uint64 {
	if !c.HashesReady {
		c.Hashes = AppendHashes(c.Hashes[:0], c.Request.ModelKey, c.Request.Prompt, s.p.BlockSize, s.p.MaxBlocks)
		c.HashesReady = true
	}
	return c.Hashes
}

// limits are what an endpoint may carry and keep affinity.
//
// Affinity is judged on what this proxy knows: the scrape and its own
// requests since (Endpoint.OwnQueue), not the other proxies' estimated
// ones. The estimate grows with our own send rate to an endpoint, which is
// highest at the endpoint a prompt's rendezvous key prefers, so counting it
// here would take affinity away from exactly the servers that hold the
// prompts, on every proxy of a fleet at once: four simulated proxies kept
// 89% of one proxy's prefix hits with it and 97% without (picker/README.md,
// "Fleets of proxies"). Load scoring (queue, saturation) still counts it.
type limits struct {
	queue   float64   // queues below this keep affinity: the shortest plus QueueSlack plus a draw in (0,1]
	load    float64   // most requests in it (loadBound × the mean, plus one); +Inf without a bound
	bounded bool      // load is finite: without a bound every load is within (scraped loads are never NaN)
	queues  []float64 // each candidate's queue as compared: Queue(), or OwnQueue() when the candidates carry Others
}

// within reports whether eps[i], e, is within the limits.
func (l *limits) within(i int, e *framework.Endpoint) bool {
	return l.queues[i] < l.queue && (!l.bounded || l.withinLoad(e))
}

// withinLoad is within's load test, for a bounded load.
func (l *limits) withinLoad(e *framework.Endpoint) bool {
	return (e.Running + e.Waiting + e.Pending) <= l.load
}

// limitsOf computes the limits of one cycle. The shortest queue is the
// cycle's (Cycle.QueueBounds: usually the saturation filter found it)
// unless the other proxies' estimate is in the queues.
func (s *Scorer) limitsOf(c *framework.Cycle, eps []framework.Endpoint) limits {
	l := limits{load: math.Inf(1)}
	var shortest float64
	if c.Others {
		l.queues, shortest = c.OwnQueues(eps)
	} else {
		shortest, _ = c.QueueBounds(eps)
		l.queues = c.Queues(eps)
	}
	// A fractional slack is kept at random: a queue longer than the
	// shortest by slack + f (0 < f < 1) keeps affinity with probability
	// 1 - f, drawn per pick. Whole slacks keep their meaning (at most slack
	// more, always). Proxies of a fleet draw independently, so at the
	// boundary they split between the prompt's server and the others
	// instead of all staying, or all leaving, at once.
	l.queue = shortest + s.queueSlack + 1 - c.Float64()
	if b := s.p.LoadBound; b > 0 {
		var sum float64
		for i := range eps {
			sum += eps[i].Running + eps[i].Waiting + eps[i].Pending
		}
		l.load = b*sum/float64(len(eps)) + 1
		l.bounded = true
	}
	return l
}

// scoreLearned scores each endpoint by the fraction of the prompt's leading
// blocks it holds. Holding block k implies holding blocks 0..k-1 (see
// Index), so the set of holders shrinks as k grows: the deepest block held by
// some not-yet-scored candidate is found by binary search, its holders get
// that depth, and the search repeats below it. That is a few lookups per
// distinct match length rather than one per block.
func (s *Scorer) scoreLearned(c *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	hashes := s.hashes(c)
	n := len(hashes)
	if n == 0 {
		return
	}
	slots := c.Slots(eps)
	// depth holds match lengths (0: none yet).
	depth := c.ScratchFloats(len(eps))
	clear(depth)
	unscored := func(k int) bool {
		return s.index.Holders(hashes[k], func(id int32) bool {
			i := slots.Of(id)
			return i < 0 || depth[i] != 0
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
			if i := slots.Of(id); i >= 0 && depth[i] == 0 {
				depth[i] = float64(lo + 1)
			}
			return true
		})
		hi = lo
	}
	limit := s.limitsOf(c, eps)
	floored := -1
	if s.floor > 0 {
		floored = s.rendezvousChoice(c, eps, limit)
	}
	// An endpoint over the limits, or that holds nothing and is not the
	// floored choice, scores 0: adding weight × 0 would change no sum.
	for i := range eps {
		if (depth[i] == 0 && i != floored) || !limit.within(i, &eps[i]) {
			continue
		}
		v := depth[i] / float64(n)
		if i == floored {
			v = max(v, s.floor)
		}
		sum[i] += weight * v
	}
}

// scoreRendezvous gives 1 to the endpoint that rendezvous hashing of the
// prompt's leading blocks prefers among those within the queue limit.
func (s *Scorer) scoreRendezvous(c *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	if i := s.rendezvousChoice(c, eps, s.limitsOf(c, eps)); i >= 0 {
		sum[i] += weight * 1
	}
}

// rendezvousChoice returns the position of the endpoint that rendezvous
// hashing of the prompt's leading blocks prefers among those whose queue is
// within limit, or -1.
//
// The key covers at most RendezvousBlocks blocks, and for chat messages no
// more than the first message (the system prompt) when it is shorter: the key
// must be the part many requests share, not the part that makes each unique.
func (s *Scorer) rendezvousChoice(c *framework.Cycle, eps []framework.Endpoint, limit limits) int {
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
	if !s.seen.seenBefore(key, !c.Dry) {
		return -1 // unique so far: by load alone
	}

	// A LoRA adapter's prefix can only be reused where the adapter runs: when
	// some candidate runs it, only those may be preferred, or affinity
	// would pull the adapter onto servers that must first load it. One pass
	// finds both the preferred endpoint and the preferred runner, reading
	// the adapter lists of the endpoints within the queue limit only.
	best, runner := -1, -1
	var bestWeight, runnerWeight uint64
	adapter := c.AdapterRuns(eps)[:len(eps)] // shared with the LoRA affinity scorer
	queues := limit.queues[:len(eps)]
	maxQueue, bounded := limit.queue, limit.bounded // locals: the loop keeps them in registers
	beyond := false                                 // an endpoint over the limit runs the adapter
	for i := range eps {
		e := &eps[i]
		if !(queues[i] < maxQueue && (!bounded || limit.withinLoad(e))) {
			beyond = beyond || adapter[i]
			continue
		}
		w := framework.Mix(key ^ e.Key)
		if best < 0 || w > bestWeight {
			best, bestWeight = i, w
		}
		if adapter[i] && (runner < 0 || w > runnerWeight) {
			runner, runnerWeight = i, w
		}
	}
	switch {
	case runner >= 0:
		return runner
	case best >= 0 && !beyond: // then none within the limit may be preferred
		return best
	}
	return -1
}
