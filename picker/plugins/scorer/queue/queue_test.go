package queue

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name string
		eps  []framework.Endpoint
		want []float64
	}{
		{name: "rescaled between min and max", eps: []framework.Endpoint{{Waiting: 0}, {Waiting: 5}, {Waiting: 10}}, want: []float64{1, 0.5, 0}},
		{name: "requests sent since the scrape count", eps: []framework.Endpoint{{Waiting: 0, Pending: 4}, {Waiting: 2}}, want: []float64{0, 1}},
		{name: "all equal", eps: []framework.Endpoint{{Waiting: 3}, {Waiting: 3}}, want: []float64{1, 1}},
		{name: "one endpoint", eps: []framework.Endpoint{{Waiting: 7}}, want: []float64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]float64, len(tc.eps))
			New().Score(&framework.Cycle{}, tc.eps, out)
			require.Equal(t, tc.want, out)
		})
	}
}
