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
	model, key := c.Request.Model, c.Request.ModelKey
	if model == "" {
		clear(runs)
	} else {
		hk := metrics.HintKey(key)
		for i := range eps {
			e := &eps[i]
			// The hint rules out most endpoints without reading their LoRA.
			var l *metrics.LoRA = e.LoRA // named: IsRunning inlines
			runs[i] = e.LoRAHint.MayRun(hk) && l.IsRunning(model, key)
		}
	}
	c.ad.first, c.ad.n = &eps[0], len(eps)
	return runs
}
