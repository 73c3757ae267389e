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
	// The same endpoints with the LoRA hint the pool copies from each
	// sample: the scores must not change.
	hinted := append([]framework.Endpoint(nil), eps...)
	for i := range hinted {
		hinted[i].LoRAHint = hinted[i].LoRA.Hint()
	}
	for _, tc := range []struct {
		model string
		want  []float64
	}{
		{model: "a", want: []float64{Running, Room, Waiting, 0, 0}},
		{model: "b", want: []float64{Room, Running, Running, Running, 0}},
		{model: "z", want: []float64{Room, Room, 0, 0, 0}},
		{model: "", want: []float64{0, 0, 0, 0, 0}},
	} {
		for name, eps := range map[string][]framework.Endpoint{"without hints": eps, "with hints": hinted} {
			t.Run(tc.model+"/"+name, func(t *testing.T) {
				c := &framework.Cycle{}
				c.Reset(&framework.Request{Model: tc.model, ModelKey: metrics.Key(tc.model)}, 0, 0)
				out := make([]float64, len(eps))
				New().Score(c, eps, out)
				require.Equal(t, tc.want, out)
			})
		}
	}
}
