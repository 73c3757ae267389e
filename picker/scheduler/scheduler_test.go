package scheduler

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/filter/saturation"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/picker/maxscore"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/kvcache"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/queue"
)

// recorder observes picks and counts its Score calls; it scores every endpoint 0.
type recorder struct {
	picked []string
	calls  int
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Score(_ *framework.Cycle, eps []framework.Endpoint, out []float64) {
	r.calls++
	for i := range eps {
		out[i] = 0
	}
}
func (r *recorder) Picked(_ *framework.Cycle, ep *framework.Endpoint) {
	r.picked = append(r.picked, ep.Addr)
}

func endpoints(queues ...float64) []framework.Endpoint {
	eps := make([]framework.Endpoint, len(queues))
	for i, q := range queues {
		eps[i] = framework.Endpoint{Addr: fmt.Sprint("ep", i), Key: uint64(i + 1), Member: int32(i), Waiting: q, KVUsage: q / 100}
	}
	return eps
}

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		name     string
		queues   []float64
		priority int
		want     []int32
		shed     bool
		scored   bool // whether scorers ran
	}{
		{name: "filter, score, pick", queues: []float64{3, 9, 1, 2}, want: []int32{2, 3, 0}, scored: true},
		{name: "all saturated and sheddable", queues: []float64{5, 9}, priority: -1, shed: true},
		{name: "all saturated, served by least load", queues: []float64{9, 5, 6, 7}, want: []int32{1, 2, 3}},
		{name: "one left", queues: []float64{9, 1}, want: []int32{1}, scored: true},
		{name: "nothing to schedule", queues: nil, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			p := NewProfile(
				[]framework.Filter{saturation.New(saturation.Defaults)},
				[]Weighted{{queue.New(), 2}, {kvcache.New(), 2}, {rec, 1}, {rec, 0}},
				maxscore.New(), 3)
			c := &framework.Cycle{}
			c.Reset(&framework.Request{Priority: tc.priority}, 0, 7)
			var b Buffers
			got, shed := p.Schedule(c, endpoints(tc.queues...), &b, nil)
			require.Equal(t, tc.shed, shed)
			require.Equal(t, tc.want, got)
			if tc.scored {
				require.Equal(t, 1, rec.calls, "weight 0 scorers are skipped")
			} else {
				require.Zero(t, rec.calls)
			}
			if len(tc.want) > 0 {
				require.Equal(t, []string{fmt.Sprint("ep", tc.want[0])}, rec.picked, "observers see the pick")
			} else {
				require.Empty(t, rec.picked)
			}
		})
	}
}

func TestPlugins(t *testing.T) {
	rec := &recorder{}
	f := saturation.New(saturation.Defaults)
	pk := maxscore.New()
	p := NewProfile([]framework.Filter{f}, []Weighted{{rec, 1}}, pk, 1)
	require.Equal(t, []any{f, rec, pk}, p.Plugins())
	require.Len(t, p.observers, 1)
}
