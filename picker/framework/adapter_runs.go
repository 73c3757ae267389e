package framework

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"

// adapterRuns caches, for one candidate list, whether each candidate runs
// the requested model (LoRA adapter): the LoRA affinity scorer and the
// prefix scorer's adapter check both need it, and looking it up is most of
// either's cost.
type adapterRuns struct {
	first *Endpoint // the list's first element and length identify it
	n     int
	runs  []bool
}

// AdapterRuns returns, for each candidate, whether its LoRA state says the
// request's model is running there; computed at most once per candidate
// list.
func (c *Cycle) AdapterRuns(eps []Endpoint) []bool {
	if len(eps) == 0 {
		return nil
	}
	if c.ad.first == &eps[0] && c.ad.n == len(eps) {
		return c.ad.runs[:len(eps)]
	}
	runs := c.AdapterRunsScratch(len(eps))
	q := c.AdapterQuery()
	for i := range runs {
		runs[i] = q.AdapterRun(&eps[i])
	}
	c.SetAdapterRuns(eps)
	return runs
}

// HasAdapterRuns reports whether AdapterRuns(eps) is already known, for a
// plugin that would rather compute it in a pass of its own (with
// AdapterRun, AdapterRunsScratch and SetAdapterRuns) than have it cost a
// pass more.
func (c *Cycle) HasAdapterRuns(eps []Endpoint) bool {
	return len(eps) > 0 && c.ad.first == &eps[0] && c.ad.n == len(eps)
}

// AdapterRunsScratch returns the cycle's buffer of AdapterRuns resized to
// n, for a plugin to fill with AdapterRun before SetAdapterRuns.
func (c *Cycle) AdapterRunsScratch(n int) []bool {
	if cap(c.ad.runs) < n {
		c.ad.runs = make([]bool, n)
	}
	return c.ad.runs[:n]
}

// SetAdapterRuns records that AdapterRunsScratch's first len(eps) entries
// are AdapterRun of each of eps. eps must not be empty.
func (c *Cycle) SetAdapterRuns(eps []Endpoint) {
	c.ad.first, c.ad.n = &eps[0], len(eps)
}

// AdapterQuery is what AdapterRun needs of the request, computed once per
// pass.
type AdapterQuery struct {
	model string
	key   uint64
	hint  metrics.LoRAHint
}

// AdapterQuery returns the request's query for AdapterRun.
func (c *Cycle) AdapterQuery() AdapterQuery {
	q := AdapterQuery{model: c.Request.Model, key: c.Request.ModelKey}
	if q.model != "" { // else no bit: no known hint may run it
		q.hint = metrics.HintKey(q.key)
	}
	return q
}

// AdapterRun is one entry of AdapterRuns: whether e's LoRA state says the
// request's model runs there. The hint rules out most endpoints without
// reading their LoRA, inline; the others are a call.
func (q *AdapterQuery) AdapterRun(e *Endpoint) bool {
	return e.LoRAHint.MayRun(q.hint) && q.runs(e.LoRA)
}

//go:noinline (else AdapterRun grows past the inlining budget)
func (q *AdapterQuery) runs(l *metrics.LoRA) bool {
	return q.model != "" && l.IsRunning(q.model, q.key)
}
