// Package weightedrandom picks endpoints at random with probability
// proportional to their scores.
package weightedrandom

import (
	"math"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

// Type names the plugin in configuration.
const Type = "weighted-random"

// Picker is the weighted-random picker.
type Picker struct{}

// New returns the picker.
func New() *Picker { return &Picker{} }

// Name implements framework.Picker.
func (*Picker) Name() string { return Type }

// Pick implements framework.Picker. It draws k endpoints without replacement,
// each with probability proportional to its score (Efraimidis and Spirakis:
// key = u^(1/w), largest keys win; computed as log(u)/w). When every score is
// 0 the draw is uniform.
func (p *Picker) Pick(c *framework.Cycle, eps []framework.Endpoint, scores []float64, k int, dst []int) []int {
	keys := scratch(c, len(eps))
	positive := false
	for _, s := range scores {
		if s > 0 {
			positive = true
			break
		}
	}
	for i := range eps {
		u := (float64(c.Rand()>>11) + 0.5) / (1 << 53) // in (0,1)
		switch w := scores[i]; {
		case !positive:
			keys[i] = u
		case w > 0:
			keys[i] = math.Log(u) / w
		default:
			keys[i] = math.Inf(-1) // never before a positive score
		}
	}
	return framework.TopK(c, eps, keys, k, dst)
}

// scratch returns a per-cycle buffer for the keys.
func scratch(c *framework.Cycle, n int) []float64 {
	if cap(c.Floats) < n {
		c.Floats = make([]float64, n)
	}
	return c.Floats[:n]
}
