package loraaffinity

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func TestScore(t *testing.T) {
	eps := []framework.Endpoint{
		{LoRA: metrics.NewLoRA([]string{"a"}, nil, 2)},           // running
		{LoRA: metrics.NewLoRA([]string{"b"}, nil, 2)},           // room
		{LoRA: metrics.NewLoRA([]string{"b"}, []string{"a"}, 2)}, // waiting, no room
		{LoRA: metrics.NewLoRA([]string{"b", "c"}, nil, 2)},      // full
		{LoRA: nil}, // no LoRA metrics
	}
	for _, tc := range []struct {
		model string
		want  []float64
	}{
		{model: "a", want: []float64{Running, Room, Waiting, 0, 0}},
		{model: "", want: []float64{0, 0, 0, 0, 0}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			c := &framework.Cycle{}
			c.Reset(&framework.Request{Model: tc.model, ModelKey: metrics.Key(tc.model)}, 0, 0)
			out := make([]float64, len(eps))
			New().Score(c, eps, out)
			require.Equal(t, tc.want, out)
		})
	}
}
