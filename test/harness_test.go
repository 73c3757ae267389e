package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// upstream is an HTTP server that answers with a fixed status and its own
// name, counting requests.
type upstream struct {
	addr string
	hits atomic.Int64
}

func newUpstream(t *testing.T, name string, status int) *upstream {
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("x-served-by", name)
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s:%s", name, r.Header.Get("x-gateway-destination-endpoint"))
	}))
	t.Cleanup(srv.Close)
	u.addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// closedAddr is a 127.0.0.1 port nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

func destinationChain(header string, metadata string) harness.Chain {
	step := M{}
	if header != "" {
		step["set"] = [][3]string{{"req", "x-gateway-destination-endpoint", header}}
	}
	if metadata != "" {
		step["metadata"] = []M{{"ns": "envoy.lb", "key": "x-gateway-destination-endpoint", "string": metadata}}
	}
	return harness.Chain{script("a", M{"request_headers": []M{step}})}
}

// The harness routes like Envoy's override_host policy with envoy.yaml's
// retry policy: the destination list in order, skipping entries outside
// the cluster, the next entry on connect failure or a retriable 5xx, round
// robin when no valid entry is left.
func TestHarnessOverrideHostRouting(t *testing.T) {
	h := scriptHost(t, harness.Options{LogLevel: "warn"})
	good := newUpstream(t, "good", 200)
	other := newUpstream(t, "other", 200)
	failing := newUpstream(t, "failing", 503)
	dead := closedAddr(t)
	outside := newUpstream(t, "outside", 200) // not in the cluster
	cluster := []string{good.addr, other.addr, failing.addr, dead}
	send := func(chain harness.Chain, cl []string, retries int) *harness.Result {
		h.MustConfigure(chain)
		res, err := h.Send(context.Background(), &harness.Request{Body: []byte(`{}`), Cluster: cl, Retries: retries})
		require.NoError(t, err)
		return res
	}
	endpoints := func(r *harness.Result) []string {
		var out []string
		for _, a := range r.Attempts {
			out = append(out, fmt.Sprintf("%s/%s/%d", a.Endpoint, a.Source, a.Status))
		}
		return out
	}

	t.Run("first entry", func(t *testing.T) {
		r := send(destinationChain(other.addr+","+good.addr, ""), cluster, 0)
		require.Equal(t, other.addr, r.Endpoint)
		require.Equal(t, 200, r.Client.Status)
		require.Equal(t, "other", r.Client.Headers.Get("x-served-by"))
	})
	t.Run("connect failure then 503 then next entry", func(t *testing.T) {
		r := send(destinationChain(dead+", "+failing.addr+" ,"+good.addr, ""), cluster, 0)
		require.Equal(t, []string{dead + "/override/0", failing.addr + "/override/503", good.addr + "/override/200"}, endpoints(r))
		require.Equal(t, good.addr, r.Endpoint)
		require.Equal(t, "good:"+dead+", "+failing.addr+" ,"+good.addr, string(r.Client.Body))
	})
	t.Run("an entry outside the cluster is skipped", func(t *testing.T) {
		r := send(destinationChain(outside.addr+","+good.addr, ""), cluster, 0)
		require.Equal(t, good.addr, r.Endpoint)
		require.Zero(t, outside.hits.Load())
	})
	t.Run("retries exhausted: the last 5xx reaches the client", func(t *testing.T) {
		r := send(destinationChain(failing.addr+","+failing.addr+","+failing.addr+","+good.addr, ""), cluster, 0)
		require.Len(t, r.Attempts, 3)
		require.Equal(t, 503, r.Client.Status)
		require.Equal(t, failing.addr, r.Endpoint)
	})
	t.Run("no valid entry: round robin", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			r := send(destinationChain(outside.addr, ""), []string{good.addr, other.addr}, 0)
			require.Equal(t, "fallback", r.Attempts[0].Source)
			seen[r.Endpoint] = true
		}
		require.Len(t, seen, 2)
	})
	t.Run("metadata when there is no header", func(t *testing.T) {
		r := send(destinationChain("", other.addr), cluster, 0)
		require.Equal(t, other.addr, r.Endpoint)
		require.Equal(t, "override", r.Attempts[0].Source)
	})
	t.Run("every attempt fails: the router answers 503", func(t *testing.T) {
		r := send(destinationChain(dead, ""), []string{dead}, harness.NoRetries)
		require.Equal(t, 503, r.Client.Status)
		require.Equal(t, "router", r.LocalReply.Who)
		require.Contains(t, string(r.Client.Body), "upstream connect error")
		require.Empty(t, r.Endpoint)
	})
	t.Run("no cluster hosts: no healthy upstream", func(t *testing.T) {
		r := send(destinationChain("", ""), nil, 0)
		require.Equal(t, 503, r.Client.Status)
		require.Equal(t, "no healthy upstream", string(r.Client.Body))
	})
}

// The served endpoint reaches the filters' response hooks as the upstream
// address attribute.
func TestHarnessServedEndpointAttribute(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	good := newUpstream(t, "good", 200)
	h.MustConfigure(harness.Chain{script("a", M{"response_headers": []M{{"attributes": true}}})})
	res, err := h.Send(context.Background(), &harness.Request{Cluster: []string{good.addr}})
	require.NoError(t, err)
	require.Equal(t, good.addr, res.Endpoint)
	st, _ := h.Stats()
	require.NotNil(t, st)
	require.Contains(t, h.Stderr(), "upstream="+good.addr+"/true")
}
