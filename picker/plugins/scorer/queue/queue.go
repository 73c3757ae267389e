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

// Score implements framework.Scorer.
func (s *Scorer) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out[:len(eps)])
	s.AddScore(c, eps, 1, out)
}

// AddScore implements framework.WeightedScorer. The queues and their
// bounds come from the cycle (the saturation filter computed them while
// filtering), so this is one pass without a Queue() per endpoint.
func (*Scorer) AddScore(c *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	sum = sum[:len(eps)]
	lo, hi := c.QueueBounds(eps)
	if hi == lo {
		for i := range sum {
			sum[i] += weight * 1
		}
		return
	}
	qs := c.Queues(eps)[:len(sum)]
	for i, q := range qs {
		sum[i] += weight * ((hi - q) / (hi - lo))
	}
}
