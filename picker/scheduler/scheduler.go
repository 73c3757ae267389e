// Package scheduler runs a scheduling profile: filters, then weighted
// scorers, then a picker, the pipeline of the Inference Extension's
// scheduler. It holds no state of its own and is safe for concurrent use.
package scheduler

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

// Weighted is a scorer and its weight in the sum.
type Weighted struct {
	Scorer framework.Scorer
	Weight float64
}

// Profile is one configured pipeline.
type Profile struct {
	Filters      []framework.Filter
	Scorers      []Weighted
	Picker       framework.Picker
	MaxEndpoints int // length of the returned list: the pick, then fallbacks

	observers []framework.PickObserver
	adders    []framework.WeightedScorer // per Scorers entry, nil if it is not one
}

// NewProfile assembles a profile. Plugins that implement
// framework.PickObserver are told about every pick.
func NewProfile(filters []framework.Filter, scorers []Weighted, picker framework.Picker, maxEndpoints int) *Profile {
	p := &Profile{Filters: filters, Scorers: scorers, Picker: picker, MaxEndpoints: maxEndpoints}
	seen := map[any]bool{}
	add := func(v any) {
		if o, ok := v.(framework.PickObserver); ok && !seen[v] {
			seen[v] = true
			p.observers = append(p.observers, o)
		}
	}
	for _, f := range filters {
		add(f)
	}
	for _, s := range scorers {
		add(s.Scorer)
		a, _ := s.Scorer.(framework.WeightedScorer)
		p.adders = append(p.adders, a)
	}
	add(picker)
	return p
}

// Plugins returns every plugin of the profile, for lifecycle hooks.
func (p *Profile) Plugins() []any {
	var out []any
	for _, f := range p.Filters {
		out = append(out, f)
	}
	for _, s := range p.Scorers {
		out = append(out, s.Scorer)
	}
	return append(out, p.Picker)
}

// Buffers are a cycle's scratch space for the pipeline; reuse them.
type Buffers struct {
	scores  []float64
	partial []float64
	picks   []int

	// Moved reports whether the last Schedule may have reordered eps: a
	// filter dropped endpoints (and moved the kept ones forward). Filters
	// that keep every endpoint leave the order as it was, and scorers and
	// pickers never write eps, so otherwise eps is as the caller built it.
	Moved bool
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// Schedule runs the profile over eps, which it reorders, and appends to dst
// the Member of each chosen endpoint, best first. When a filter leaves no
// endpoint (everything saturated), a sheddable request (priority < 0) is
// shed: Schedule returns shed = true and appends nothing. Any other request
// goes to the least-loaded endpoints among those the filter saw.
func (p *Profile) Schedule(c *framework.Cycle, eps []framework.Endpoint, b *Buffers, dst []int32) (out []int32, shed bool) {
	if len(eps) == 0 {
		return dst, false
	}
	k := p.MaxEndpoints
	picks := b.picks[:0]
	b.Moved = false
	for _, f := range p.Filters {
		n := f.Filter(c, eps)
		b.Moved = b.Moved || n != len(eps)
		if n == 0 {
			if c.Request.Priority < 0 {
				return dst, true
			}
			picks = leastLoaded(c, eps, b, k, picks)
			return p.finish(c, eps, b, picks, dst), false
		}
		eps = eps[:n]
	}

	scores := grow(b.scores, len(eps))
	b.scores = scores
	clear(scores)
	for j, ws := range p.Scorers {
		if ws.Weight == 0 {
			continue
		}
		if a := p.adders[j]; a != nil {
			a.AddScore(c, eps, ws.Weight, scores)
			continue
		}
		partial := grow(b.partial, len(eps))
		b.partial = partial
		ws.Scorer.Score(c, eps, partial)
		scores := scores[:len(partial)] // proves the bounds for the loop
		for i, v := range partial {
			scores[i] += ws.Weight * v
		}
	}
	picks = p.Picker.Pick(c, eps, scores, k, picks)
	return p.finish(c, eps, b, picks, dst), false
}

func (p *Profile) finish(c *framework.Cycle, eps []framework.Endpoint, b *Buffers, picks []int, dst []int32) []int32 {
	b.picks = picks
	if len(picks) > 0 && !c.Dry {
		for _, o := range p.observers {
			o.Picked(c, &eps[picks[0]])
		}
	}
	for _, i := range picks {
		dst = append(dst, eps[i].Member)
	}
	return dst
}

// leastLoaded orders by queue, then KV-cache use, then at random. Queues are
// counts, so a KV difference (< 1) never outweighs a queue difference.
func leastLoaded(c *framework.Cycle, eps []framework.Endpoint, b *Buffers, k int, picks []int) []int {
	scores := grow(b.scores, len(eps))
	b.scores = scores
	for i := range eps {
		scores[i] = -(eps[i].Queue() + eps[i].KVUsage/2)
	}
	return framework.TopK(c, eps, scores, k, picks)
}
