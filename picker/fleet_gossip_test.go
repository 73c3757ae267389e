package picker

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/freeport"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// Two proxies with gossip: each counts the other's requests sent since the
// scrape as it counts its own, so the second does not send to the server
// the first just loaded, and a configured fleet size is not counted on top.
func TestPickCountsThePeersRequestsFromGossip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gossip bool
	}{{"with gossip", true}, {"without", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := fmt.Sprintf("127.0.0.1:%d", freeport.UDP(t)), fmt.Sprintf("127.0.0.1:%d", freeport.UDP(t))
			extra := func(self string) string {
				if !tc.gossip {
					return ""
				}
				return fmt.Sprintf(`"scrape":{"fleet":{"proxies":2,"gossip":{"listen":%q,"peers":[%q,%q],"interval":"1ms"}}}`, self, a, b)
			}
			p1 := openManual(t, staticConfig([]string{epA, epB}, extra(a)))
			p2 := openManual(t, staticConfig([]string{epA, epB}, extra(b)))
			for _, p := range []*Pool{p1, p2} {
				publish(t, p, epA, metrics.Sample{})
				publish(t, p, epB, metrics.Sample{})
			}
			// The first proxy puts three requests on A since the scrape.
			for range 3 {
				target(t, p1, epA).Start()
			}
			if tc.gossip {
				require.Eventually(t, func() bool { return target(t, p2, epA).Peers() == 3 }, 2*time.Second, time.Millisecond)
				require.Equal(t, 1, p2.Stats().Gossip.Peers)
			} else {
				time.Sleep(20 * time.Millisecond)
			}
			got := map[string]int{}
			res := make([]Result, 3)
			for i := range res {
				p2.Pick(&Request{}, &res[i])
				got[res[i].Endpoints()[0]]++
			}
			if tc.gossip {
				// A holds 3 (theirs), B 0: B, B, then level at 3 each only
				// after the third; two of B at least and never A first.
				require.Equal(t, epB, res[0].Endpoints()[0])
				require.Equal(t, epB, res[1].Endpoints()[0])
				require.Equal(t, int64(3), p2.Stats().PerEndpoint[0].PeersInFlight)
			} else {
				require.Equal(t, 1, min(got[epA], 1), "blind to the other proxy, the second sends to A too")
				require.Nil(t, p2.Stats().Gossip)
			}
			for i := range res {
				res[i].Done(OutcomeOK)
			}
		})
	}
}
