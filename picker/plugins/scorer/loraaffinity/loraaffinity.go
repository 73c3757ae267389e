// Package loraaffinity prefers endpoints that already run the requested LoRA
// adapter, then those with room to load it.
package loraaffinity

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// Type names the plugin in configuration.
const Type = "lora-affinity"

// Scores, the Inference Extension's.
const (
	Running = 1.0 // the adapter is loaded
	Room    = 0.8 // running + waiting adapters < max_lora: it can be loaded without evicting
	Waiting = 0.6 // the adapter is queued to be loaded
)

// Scorer is the LoRA affinity scorer.
type Scorer struct{}

// New returns the scorer.
func New() *Scorer { return &Scorer{} }

// Name implements framework.Scorer.
func (*Scorer) Name() string { return Type }

// Score implements framework.Scorer. Endpoints that report no LoRA state
// score 0, so a pool without LoRA metrics is ranked by the other scorers.
func (s *Scorer) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out[:len(eps)])
	s.AddScore(c, eps, 1, out)
}

// AddScore implements framework.WeightedScorer. A score of 0 adds nothing.
func (*Scorer) AddScore(c *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	model, key := c.Request.Model, c.Request.ModelKey
	if model == "" {
		return
	}
	sum = sum[:len(eps)]
	runs := c.AdapterRuns(eps)[:len(sum)] // shared with the prefix scorer's adapter check
	hk := metrics.HintKey(key)
	for i := range sum {
		e := &eps[i]
		// Naming the type imports package metrics, which is what lets the
		// compiler inline LoRA's methods here: reached only through
		// framework.Endpoint, they stay calls (2/3 of this loop's time).
		var l *metrics.LoRA = e.LoRA
		h := e.LoRAHint // answers without reading LoRA when known
		switch {
		case l == nil:
		case runs[i]:
			sum[i] += weight * Running
		case h.Known() && h.HasRoom(), !h.Known() && l.HasRoom():
			sum[i] += weight * Room
		case h.MayWait(hk) && l.IsWaiting(model, key):
			sum[i] += weight * Waiting
		}
	}
}
