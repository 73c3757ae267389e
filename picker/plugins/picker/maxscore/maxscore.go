// Package maxscore picks the highest-scoring endpoints, ties broken at random.
package maxscore

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"

// Type names the plugin in configuration.
const Type = "max-score"

// Picker is the max-score picker.
type Picker struct{}

// New returns the picker.
func New() *Picker { return &Picker{} }

// Name implements framework.Picker.
func (*Picker) Name() string { return Type }

// Pick implements framework.Picker: the k best in score order. Equal scores
// are ordered by a per-cycle random key, so ties spread across endpoints.
func (*Picker) Pick(c *framework.Cycle, eps []framework.Endpoint, scores []float64, k int, dst []int) []int {
	return framework.TopK(c, eps, scores, k, dst)
}
