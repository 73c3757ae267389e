// Package saturation drops endpoints that cannot take more work now.
package saturation

import (
	"math"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

// Type names the plugin in configuration.
const Type = "saturation"

// Config holds the thresholds at which an endpoint is saturated: the
// filter_config's pools[].saturation section.
type Config struct {
	Queue   float64 `json:"queue,omitempty"`   // queue (scraped waiting + sent since) at or above this
	KVCache float64 `json:"kvCache,omitempty"` // KV-cache utilization at or above this
}

// Defaults are the Inference Extension's.
var Defaults = Config{Queue: 5, KVCache: 0.8}

// SetDefaults implements framework.Params.
func (c *Config) SetDefaults() {
	if c.Queue == 0 {
		c.Queue = Defaults.Queue
	}
	if c.KVCache == 0 {
		c.KVCache = Defaults.KVCache
	}
}

// Validate implements framework.Params.
func (c *Config) Validate(report func(field, msg string)) {
	if !(c.Queue > 0) {
		report("queue", "must be > 0")
	}
	if !(c.KVCache > 0 && c.KVCache <= 1) {
		report("kvCache", "must be in (0, 1]")
	}
}

// Filter is the saturation filter.
type Filter struct{ t Config }

// New returns a filter with thresholds c (defaulted and valid).
func New(c Config) *Filter { return &Filter{t: c} }

// Name implements framework.Filter.
func (*Filter) Name() string { return Type }

// Saturated reports whether ep is saturated: queue or KV use at a threshold,
// or metrics too old to trust. It implements framework.SaturationDetector.
func (f *Filter) Saturated(ep *framework.Endpoint) bool {
	return ep.Stale || ep.Queue() >= f.t.Queue || ep.KVUsage >= f.t.KVCache
}

// Filter implements framework.Filter. It computes each queue once and
// records the kept endpoints' queues and their bounds for the scorers
// (Cycle.Queues, Cycle.QueueBounds).
func (f *Filter) Filter(c *framework.Cycle, eps []framework.Endpoint) int {
	k := 0
	// A kept queue is below the threshold (and built from finite numbers),
	// so the first one kept replaces both infinite bounds.
	lo, hi := math.Inf(1), math.Inf(-1)
	maxQ, maxKV := f.t.Queue, f.t.KVCache
	qs := c.QueueScratch(len(eps))[:len(eps)]
	for i := range eps {
		e := &eps[i]
		q := e.Queue()
		if e.Stale || q >= maxQ || e.KVUsage >= maxKV {
			continue
		}
		if q < lo {
			lo = q
		}
		if q > hi {
			hi = q
		}
		if i != k {
			eps[k], eps[i] = eps[i], eps[k]
		}
		qs[k] = q
		k++
	}
	if k > 0 {
		c.SetQueues(eps[:k], lo, hi)
	}
	return k
}
