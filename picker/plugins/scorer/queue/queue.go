// Package queue scores endpoints by queue depth, the Inference Extension's
// queue scorer: (max-q)/(max-min) over the candidates, 1 when all are equal.
package queue

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"

// Type names the plugin in configuration.
const Type = "queue"

// Scorer is the queue-depth scorer. Its queue is the scraped waiting queue
// plus the requests this proxy sent since that scrape.
type Scorer struct{}

// New returns the scorer.
func New() *Scorer { return &Scorer{} }

// Name implements framework.Scorer.
func (*Scorer) Name() string { return Type }

// Score implements framework.Scorer. Each queue is computed once, into out,
// along with the bounds; a second pass over out rescales it.
func (*Scorer) Score(_ *framework.Cycle, eps []framework.Endpoint, out []float64) {
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
