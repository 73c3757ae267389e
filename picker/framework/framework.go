// Package framework defines what scheduler plugins see and implement: the
// request, the candidate endpoints of one scheduling cycle, and the Filter,
// Scorer and Picker interfaces. The plugins live in picker/plugins/...; the
// pipeline that runs them is picker/scheduler.
//
// Everything here is built for a hot path called from several threads at
// once: a Cycle is per request and reused, endpoints are plain values, and no
// interface method may allocate in steady state.
package framework

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"

// Request is what the scheduler knows of one request.
type Request struct {
	Model    string // the requested model; for LoRA, the adapter name
	ModelKey uint64 // metrics.Key(Model), computed once per request
	Prompt   []byte // chat messages (raw JSON) or completion prompt, for the prefix index
	Priority int    // < 0 is sheddable
}

// Endpoint is one candidate in a scheduling cycle: its latest metrics plus
// this proxy's own live counts.
type Endpoint struct {
	Addr   string
	Key    uint64 // hash of Addr: the identity every proxy agrees on
	ID     int32  // pool-local dense id, for plugin state kept per endpoint
	Member int32  // position in the pool's endpoint list, for the caller

	Waiting  float64 // scraped
	Running  float64 // scraped
	KVUsage  float64 // scraped, 0..1
	Capacity float64 // requests it can run at once, learned (the most seen running while requests waited); 0 if unknown
	Pending  float64 // this proxy's requests sent after the scrape less those that ended since (negative when more ended): the scrape's Running/Waiting do not know of them
	Others   float64 // the other proxies' requests sent after the scrape: an estimate (>= 0; 0 for a lone proxy)
	InFlight float64 // this proxy's requests in flight
	Stale    bool    // metrics older than the pool's staleAfter
	LoRA     *metrics.LoRA
	LoRAHint metrics.LoRAHint // LoRA.Hint(), or 0 (then ask LoRA): answers most LoRA lookups without reading LoRA

	CacheTokens int64 // KV-cache size in tokens (block size × blocks) as scraped, 0 when not reported
}

// Queue is how many requests a new one would wait behind, as this proxy
// best knows it: the scraped waiting queue, plus the requests sent since
// that scrape (its own net of those that ended, and the other proxies'
// estimated), plus the new one, beyond the server's free slots. While the
// server's slots are unknown every request sent since the scrape counts as
// queued. Counting recent requests is what keeps a burst between two
// scrapes from landing on one server; counting free slots is what tells a
// full server from an idle one before either has a queue.
func (e *Endpoint) Queue() float64 { return e.queue(e.Others) }

// OwnQueue is Queue without the other proxies' estimated requests: what
// the scrape and this proxy's own requests say for certain.
func (e *Endpoint) OwnQueue() float64 { return e.queue(0) }

func (e *Endpoint) queue(others float64) float64 {
	sent := e.Pending + others
	if e.Capacity <= 0 {
		return max(0, e.Waiting+sent)
	}
	return e.Waiting + max(0, e.Running+sent+1-e.Capacity)
}

// Filter keeps some endpoints. It moves the kept ones, in their original
// order, to the front of eps and returns how many it kept; the dropped ones
// stay in eps after them, so the caller can fall back to the whole set.
// Keeping every endpoint leaves eps as it was. No plugin writes an
// endpoint's fields: the pool keeps the candidates from one pick to the
// next and rewrites only what changed (filters move whole endpoints).
type Filter interface {
	Name() string
	Filter(c *Cycle, eps []Endpoint) int
}

// Scorer writes a score in [0,1] for each endpoint into out (len(out) ==
// len(eps)); 1 is best. The pipeline multiplies it by the scorer's weight.
type Scorer interface {
	Name() string
	Score(c *Cycle, eps []Endpoint, out []float64)
}

// WeightedScorer is a Scorer that adds its score, times the weight, to each
// endpoint's sum itself (sum[i] += weight * score_i, exactly the product
// the pipeline would add), sparing the pipeline a buffer and a pass per
// scorer. The built-in scorers all are; Score stays for other callers.
type WeightedScorer interface {
	Scorer
	AddScore(c *Cycle, eps []Endpoint, weight float64, sum []float64)
}

// Picker appends to dst the positions in eps of up to k endpoints, best first.
type Picker interface {
	Name() string
	Pick(c *Cycle, eps []Endpoint, scores []float64, k int, dst []int) []int
}

// PickObserver is a plugin that learns from the endpoint a request was sent
// to, such as a prefix index recording where a prompt's blocks now live.
type PickObserver interface {
	Picked(c *Cycle, ep *Endpoint)
}

// Forgetter is a plugin that keeps state per endpoint ID and must drop it
// when the endpoint leaves the pool (its ID may then be reused).
type Forgetter interface {
	Forget(id int32)
}
