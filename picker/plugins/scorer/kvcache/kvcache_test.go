package kvcache

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

func TestScore(t *testing.T) {
	eps := []framework.Endpoint{{KVUsage: 0}, {KVUsage: 0.25}, {KVUsage: 1}}
	out := make([]float64, len(eps))
	New().Score(&framework.Cycle{}, eps, out)
	require.Equal(t, []float64{1, 0.75, 0}, out)
}
