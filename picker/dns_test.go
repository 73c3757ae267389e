package picker

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
)

// heldResolver answers once released, or fails when its context ends.
type heldResolver struct {
	release chan struct{}
	ended   *atomic.Bool // a lookup returned
}

func (h heldResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	defer h.ended.Store(true)
	select {
	case <-h.release:
		return []netip.Addr{netip.MustParseAddr("10.0.0.9")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Opening a pool whose DNS name does not answer yet returns at once (Envoy's
// main thread loads the config): the pool has no endpoints until the lookup
// answers, and requests get the failure mode's answer meanwhile.
func TestOpenDoesNotWaitForDNS(t *testing.T) {
	for _, mode := range []string{FailOpen, FailClose} {
		t.Run(mode, func(t *testing.T) {
			res := heldResolver{release: make(chan struct{}), ended: &atomic.Bool{}}
			ps, err := OpenJSON([]byte(`{"pools":[{"name":"p","failureMode":"`+mode+`","endpoints":{"dns":{"name":"slow.example","ports":[8000],"interval":"1h"}}}]}`),
				WithCollector(collector.NewManual()), WithResolver(res))
			require.NoError(t, err)
			t.Cleanup(ps.Close)
			require.False(t, res.ended.Load(), "Open returned before the lookup ended")
			p := ps.List()[0]
			require.Zero(t, p.Stats().Endpoints)
			var r Result
			p.Pick(&Request{Model: "m"}, &r)
			require.Equal(t, StatusNoMetrics, r.Status)
			require.Equal(t, mode == FailOpen, p.FailOpen())

			close(res.release)
			require.Eventually(t, func() bool { return p.Stats().Endpoints == 1 }, 5*time.Second, time.Millisecond)
		})
	}
	t.Run("closed while resolving", func(t *testing.T) {
		ps, err := OpenJSON([]byte(`{"pools":[{"name":"p","endpoints":{"dns":{"name":"slow.example","ports":[8000]}}}]}`),
			WithCollector(collector.NewManual()), WithResolver(heldResolver{release: make(chan struct{}), ended: &atomic.Bool{}}))
		require.NoError(t, err)
		ps.Close() // returns: the lookup is cancelled
	})
}
