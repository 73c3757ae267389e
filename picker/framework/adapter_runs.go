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
	if cap(c.ad.runs) < len(eps) {
		c.ad.runs = make([]bool, len(eps))
	}
	runs := c.ad.runs[:len(eps)]
	q := adapterQuery{model: c.Request.Model, key: c.Request.ModelKey}
	if q.model != "" { // else no bit: no known hint may run it
		q.hint = metrics.HintKey(q.key)
	}
	for i := range runs {
		runs[i] = q.runsOn(&eps[i])
	}
	c.ad.first, c.ad.n = &eps[0], len(eps)
	return runs
}

// adapterQuery is what runsOn needs of the request.
type adapterQuery struct {
	model string
	key   uint64
	hint  metrics.LoRAHint // metrics.HintKey(key); 0 for no model
}

// runsOn is one entry of AdapterRuns. The hint rules out most endpoints
// without reading their LoRA, inline; the others are a call.
func (q *adapterQuery) runsOn(e *Endpoint) bool {
	return e.LoRAHint.MayRun(q.hint) && q.lookUp(e.LoRA)
}

//go:noinline (else runsOn grows past the inlining budget)
func (q *adapterQuery) lookUp(l *metrics.LoRA) bool {
	return q.model != "" && l.IsRunning(q.model, q.key)
}
