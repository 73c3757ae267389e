package conformance

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// The upstream step (DESIGN.md section 10): a cluster's upstream HTTP
// filters run once per try, after the host is chosen, on the router's
// request headers, with the response coming back through them first.

// backend is an upstream HTTP server that answers status with body and
// records what it received.
type backend struct {
	addr   string
	status int
	body   string
	mu     sync.Mutex
	got    []received
}

type received struct {
	contentLength string
	header        http.Header
	body          string
}

func newBackend(t *testing.T, status int, body string) *backend {
	t.Helper()
	b := &backend{status: status, body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, received{contentLength: strconv.FormatInt(r.ContentLength, 10), header: r.Header.Clone(), body: string(data)})
		b.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(b.status)
		_, _ = io.WriteString(w, b.body)
	}))
	t.Cleanup(srv.Close)
	b.addr = strings.TrimPrefix(srv.URL, "http://")
	return b
}

func (b *backend) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.got...)
}

// upstreamHost starts abihost with downstream filter b (observing), a route
// to cluster "pool" and the cluster's upstream chain.
func upstreamHost(t *testing.T, upstream harness.Chain, downstream M, hosts ...harness.UpstreamHost) *harness.Host {
	t.Helper()
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("b", downstream)})
	h.MustConfigureRoutes(harness.Route{Name: "r", Cluster: "pool"})
	h.MustConfigureCluster(harness.Cluster{Name: "pool", Hosts: hosts, Filters: upstream})
	return h
}

func send(t *testing.T, h *harness.Host, req *harness.Request) *harness.Result {
	t.Helper()
	res, err := h.Send(context.Background(), req)
	require.NoError(t, err)
	return res
}

func streamLogs(res *harness.Result, prefix string) []string {
	var out []string
	for _, l := range res.Logs {
		if strings.HasPrefix(l.Msg, prefix) {
			out = append(out, strings.TrimSpace(l.Msg))
		}
	}
	return out
}

// Each try gets new upstream filter instances (destroyed on the retry
// decision, without stream_complete), sees its own host's Host and
// HostLocality metadata and upstream.address, shares dynamic metadata with
// the downstream chain, and a retried try's response never reaches the
// downstream chain. The first try gets the body frames as they pass the
// router; the retry replays the retry buffer as one frame.
func TestUpstreamAttemptsHostsAndRetry(t *testing.T) {
	a := newBackend(t, 503, "from-a")
	b := newBackend(t, 200, "from-b")
	h := upstreamHost(t, harness.Chain{script("a", M{
		"request_headers": []M{{"attributes": true,
			"read_metadata": []M{{"ns": "aigw", "key": "backend", "source": "host"}, {"ns": "zone", "key": "name", "source": "locality"},
				{"ns": "down", "key": "k"}},
			"metadata": []M{{"ns": "up", "key": "k", "string": "from-upstream"}}}},
		"response_headers": []M{{"attributes": true}},
	})}, M{
		"request_headers":  []M{{"metadata": []M{{"ns": "down", "key": "k", "string": "from-downstream"}}}},
		"response_headers": []M{{"read_metadata": []M{{"ns": "up", "key": "k"}, {"ns": "aigw", "key": "backend", "source": "host"}}}},
	},
		harness.UpstreamHost{Address: a.addr, Metadata: map[string]map[string]any{"aigw": {"backend": "anthropic-1"}},
			LocalityMetadata: map[string]map[string]any{"zone": {"name": "z1"}}},
		harness.UpstreamHost{Address: b.addr, Metadata: map[string]map[string]any{"aigw": {"backend": "openai-2"}},
			LocalityMetadata: map[string]map[string]any{"zone": {"name": "z2"}}},
	)
	res := send(t, h, &harness.Request{Chunks: [][]byte{[]byte("hel"), []byte("lo")},
		Headers: harness.Headers{{"x-gateway-destination-endpoint", a.addr + "," + b.addr}}})

	require.Equal(t, 200, res.Client.Status)
	require.Equal(t, "from-b", string(res.Client.Body), "the retried try's response never reaches the client")
	require.Equal(t, []harness.Attempt{{Endpoint: a.addr, Source: "override", Status: 503}, {Endpoint: b.addr, Source: "override", Status: 200}}, res.Attempts)
	require.Len(t, a.requests(), 1)
	require.Len(t, b.requests(), 1)
	require.Equal(t, 2, res.State.Attempts)

	// New instances per try, the first destroyed before the second exists;
	// upstream filters get no stream_complete, the downstream one does.
	require.Equal(t, []string{"life b new 1", "life a new 1", "life a destroy 1", "life a new 2", "life a destroy 2", "life b destroy 1"},
		streamLogs(res, "life"))
	require.Empty(t, streamLogs(res, "obs a stream_complete"))
	require.Len(t, streamLogs(res, "obs b stream_complete"), 1)

	// Each try sees its own host; dynamic metadata is the downstream stream's.
	require.Equal(t, []string{
		"md@host aigw backend string=anthropic-1 keys=backend namespaces=aigw route=false",
		"md@locality zone name string=z1 keys=name namespaces=zone route=false",
		"md down k string=from-downstream keys=k namespaces=down,up route=false",
		"md@host aigw backend string=openai-2 keys=backend namespaces=aigw route=false",
		"md@locality zone name string=z2 keys=name namespaces=zone route=false",
		"md down k string=from-downstream keys=k namespaces=down,up route=false",
		// the downstream filter reads what the upstream one wrote, and the
		// final try's host (stream info's upstream host)
		"md up k string=from-upstream keys=k namespaces=down,up route=false",
		"md@host aigw backend string=openai-2 keys=backend namespaces=aigw route=false",
	}, streamLogs(res, "md"))
	attrs := streamLogs(res, "attrs")
	require.Len(t, attrs, 4)
	require.Contains(t, attrs[0], "attrs request_headers ")
	require.Contains(t, attrs[0], "upstream="+a.addr+"/true")
	require.Contains(t, attrs[2], "upstream="+b.addr+"/true")
	// response.code is not set while an upstream filter sees the response.
	require.Contains(t, attrs[3], "attrs response_headers ")
	require.Contains(t, attrs[3], "code=0/false")

	// The downstream chain saw one response: the one the router forwarded.
	require.Len(t, streamLogs(res, "obs b response_headers"), 1)
	require.Equal(t, 200, res.State.ResponseCode)

	// First try: frames as they passed the router; retry: the retry buffer
	// as one frame. Envoy's own quirk shows: the router keeps "hel" in the
	// stream's buffered body for retries, so the streaming downstream module
	// filter's last frame joins that body (filter.cc addDecodedData at end of
	// stream) and an empty frame reaches the router: the first try never
	// gets "lo"; the retry gets all of it.
	obs := streamLogs(res, "obs a request_body")
	require.Equal(t, []string{
		`obs a request_body eos=0 recv="hel" buf="" rb=0`,
		`obs a request_body eos=1 recv="" buf="" rb=0`,
		`obs a request_body eos=1 recv="hello" buf="" rb=0`,
	}, obs)
	ars := res.AttemptRequests
	require.Len(t, ars, 2)
	require.Equal(t, [][]byte{[]byte("hel"), {}}, ars[0].Frames)
	require.Equal(t, [][]byte{[]byte("hello")}, ars[1].Frames)
	require.Equal(t, "hel", a.requests()[0].body)
	require.Equal(t, "hello", b.requests()[0].body)
}

// The request headers are the router's map, shared by every try (a retry
// starts from the previous try's rewrites); the body is a fresh copy of the
// retry buffer each time.
func TestUpstreamSharedHeadersFreshBody(t *testing.T) {
	a := newBackend(t, 500, "no")
	b := newBackend(t, 200, "yes")
	h := upstreamHost(t, harness.Chain{script("a", M{
		"observe":         []string{"x-try", ":path"},
		"request_headers": []M{{"status": "stop", "add": [][3]string{{"req", "x-try", "1"}}}},
		"request_body":    []M{{"append": [][2]string{{"received", "+t"}}, "set": [][3]string{{"req", ":path", "/provider/v1/messages"}}}},
	})}, M{}, harness.UpstreamHost{Address: a.addr}, harness.UpstreamHost{Address: b.addr})
	res := send(t, h, &harness.Request{Body: []byte("hello"),
		Headers: harness.Headers{{"x-gateway-destination-endpoint", a.addr + "," + b.addr}}})
	require.Equal(t, 200, res.Client.Status)
	ars := res.AttemptRequests
	require.Len(t, ars, 2)
	require.Equal(t, []string{"1"}, ars[0].Headers.Values("x-try"))
	require.Equal(t, []string{"1", "1"}, ars[1].Headers.Values("x-try"), "the retry starts from the first try's rewrites")
	require.Equal(t, []string{
		`obs a request_headers eos=0 recv="" buf="" rb=0 x-try= :path=/v1/chat/completions`,
		`obs a request_body eos=1 recv="hello" buf="" rb=0 x-try=1 :path=/v1/chat/completions`,
		`obs a request_headers eos=0 recv="" buf="" rb=0 x-try=1 :path=/provider/v1/messages`,
		`obs a request_body eos=1 recv="hello" buf="" rb=0 x-try=1|1 :path=/provider/v1/messages`,
	}, streamLogs(res, "obs a request_"))
	require.Equal(t, "hello+t", string(ars[0].Body))
	require.Equal(t, "hello+t", string(ars[1].Body), "each try gets a fresh copy of the router's buffer")
	require.Equal(t, "hello+t", b.requests()[0].body)
	require.Equal(t, "/provider/v1/messages", ars[1].Headers.Get(":path"))
	// What left the downstream chain is untouched by the upstream filters.
	require.Equal(t, "hello", string(res.Upstream.Body))
}

// A local reply from an upstream filter goes to the downstream chain (its
// response hooks see it) and is never retried, from a request hook or from
// a response hook on a retriable status.
func TestUpstreamLocalReplyNotRetried(t *testing.T) {
	t.Run("request", func(t *testing.T) {
		a := newBackend(t, 200, "never")
		h := upstreamHost(t, harness.Chain{script("a", M{
			"request_headers": []M{{"reply": M{"status": 429, "body": "slow down"}}},
		})}, M{}, harness.UpstreamHost{Address: a.addr})
		res := send(t, h, &harness.Request{Body: []byte("x")})
		require.Equal(t, 429, res.Client.Status)
		require.Equal(t, "slow down", string(res.Client.Body))
		require.Equal(t, "a", res.LocalReply.Who)
		require.Empty(t, a.requests())
		require.Equal(t, 1, res.State.Attempts)
		require.Len(t, streamLogs(res, "obs b response_headers"), 1, "the downstream chain encodes the reply")
		require.Empty(t, streamLogs(res, "obs a response_"), "upstream filters never see their local reply")
		require.Equal(t, []string{"life b new 1", "life a new 1", "life a destroy 1", "life b destroy 1"}, streamLogs(res, "life"))
	})
	t.Run("response", func(t *testing.T) {
		a := newBackend(t, 500, "boom")
		h := upstreamHost(t, harness.Chain{script("a", M{
			"response_headers": []M{{"reply": M{"status": 502, "body": "bad upstream"}}},
		})}, M{}, harness.UpstreamHost{Address: a.addr})
		res := send(t, h, &harness.Request{Body: []byte("x")})
		require.Equal(t, 502, res.Client.Status)
		require.Equal(t, "bad upstream", string(res.Client.Body))
		require.Len(t, a.requests(), 1, "a 500 the upstream filter answered is not retried")
		require.Equal(t, 1, res.State.Attempts)
	})
}

// The router decides on the status the upstream chain hands it, not the
// one on the wire.
func TestUpstreamRouterDecidesOnHandedStatus(t *testing.T) {
	a := newBackend(t, 503, "busy")
	h := upstreamHost(t, harness.Chain{script("a", M{
		"response_headers": []M{{"set": [][3]string{{"resp", ":status", "200"}}}},
	})}, M{}, harness.UpstreamHost{Address: a.addr})
	res := send(t, h, &harness.Request{Body: []byte("x")})
	require.Equal(t, 200, res.Client.Status)
	require.Equal(t, "busy", string(res.Client.Body))
	require.Len(t, a.requests(), 1)
	require.Equal(t, 1, res.State.Attempts)
}

// The codec sends headers as soon as they reach it: a content-length fixed
// in a later body hook never reaches the wire. Holding the headers until the
// body is done gets it there.
func TestUpstreamContentLengthTrap(t *testing.T) {
	grow := M{"append": [][2]string{{"received", "+xyz"}}, "set": [][3]string{{"req", "content-length", "9"}}}
	t.Run("headers passed on", func(t *testing.T) {
		a := newBackend(t, 200, "ok")
		h := upstreamHost(t, harness.Chain{script("a", M{"request_body": []M{grow}})}, M{}, harness.UpstreamHost{Address: a.addr})
		res := send(t, h, &harness.Request{Body: []byte("hello"), Retries: harness.NoRetries,
			Headers: harness.Headers{{"content-length", "5"}}})
		ars := res.AttemptRequests
		require.Len(t, ars, 1)
		require.Equal(t, "5", ars[0].Headers.Get("content-length"), "the wire has the content-length of when the headers passed")
		require.Equal(t, "hello+xyz", string(ars[0].Body))
		require.Equal(t, 503, res.Client.Status, "a body that outgrew its content-length breaks the exchange")
		require.Contains(t, res.LocalReply.Details, "upstream_reset_before_response_started")
		for _, r := range a.requests() {
			require.Equal(t, "5", r.contentLength)
		}
	})
	t.Run("headers held", func(t *testing.T) {
		a := newBackend(t, 200, "ok")
		h := upstreamHost(t, harness.Chain{script("a", M{"request_headers": []M{{"status": "stop"}}, "request_body": []M{grow}})},
			M{}, harness.UpstreamHost{Address: a.addr})
		res := send(t, h, &harness.Request{Body: []byte("hello"), Retries: harness.NoRetries,
			Headers: harness.Headers{{"content-length", "5"}}})
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, "9", res.AttemptRequests[0].Headers.Get("content-length"))
		require.Equal(t, []received{{contentLength: "9", header: a.requests()[0].header, body: "hello+xyz"}}, a.requests())
	})
}

// Once the router has the response headers they leave the upstream chain:
// an upstream filter's later getters find none. clear_route_cache and
// clear_route_cluster_cache are no-ops upstream.
func TestUpstreamResponseHeadersLeaveAndNoOps(t *testing.T) {
	a := newBackend(t, 200, "body")
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("b", M{"response_body": []M{{"read_response": []string{":status"}}}})})
	h.MustConfigureRoutes(harness.Route{Name: "keyed", Header: "x-k", Value: "1", Cluster: "pool"},
		harness.Route{Name: "other", Cluster: "pool"})
	h.MustConfigureCluster(harness.Cluster{Name: "pool", Hosts: []harness.UpstreamHost{{Address: a.addr}}, Filters: harness.Chain{script("a", M{
		"request_headers":  []M{{"remove": [][2]string{{"req", "x-k"}}, "clear_route_cache": true, "refresh_cluster": true}},
		"response_headers": []M{{"read_response": []string{":status"}}},
		"response_body":    []M{{"read_response": []string{":status"}, "set": [][3]string{{"resp", "x-late", "1"}}}},
	})}})
	res := send(t, h, &harness.Request{Headers: harness.Headers{{"x-k", "1"}}})
	require.Equal(t, 200, res.Client.Status)
	require.Equal(t, []string{
		"resph a :status=200 n=4",
		"resph a :status= n=0",
		"resph b :status=200 n=4",
	}, streamLogs(res, "resph"))
	require.False(t, res.Client.Headers.Has("x-late"))
	require.Equal(t, 0, res.State.RouteCacheClears)
	require.Equal(t, 0, res.State.ClusterCacheClears)
	require.Equal(t, "keyed", res.State.Route)
	require.False(t, res.AttemptRequests[0].Headers.Has("x-k"), "the removal itself applies to the shared headers")
}

// A reset (connect failure) is retried like a 5xx; out of tries the router
// answers 503 through the downstream chain.
func TestUpstreamResetRetried(t *testing.T) {
	b := newBackend(t, 200, "up")
	h := upstreamHost(t, harness.Chain{script("a", M{})}, M{},
		harness.UpstreamHost{Address: "127.0.0.1:1"}, harness.UpstreamHost{Address: b.addr})
	res := send(t, h, &harness.Request{Body: []byte("x"),
		Headers: harness.Headers{{"x-gateway-destination-endpoint", "127.0.0.1:1, " + b.addr}}})
	require.Equal(t, 200, res.Client.Status)
	require.Len(t, res.Attempts, 2)
	require.NotEmpty(t, res.Attempts[0].Err)
	require.Equal(t, []string{"life b new 1", "life a new 1", "life a destroy 1", "life a new 2", "life a destroy 2", "life b destroy 1"},
		streamLogs(res, "life"))

	h2 := upstreamHost(t, harness.Chain{script("a", M{})}, M{}, harness.UpstreamHost{Address: "127.0.0.1:1"})
	res = send(t, h2, &harness.Request{Body: []byte("x")})
	require.Equal(t, 503, res.Client.Status)
	require.Equal(t, 3, res.State.Attempts, "two retries after the first try")
	require.Contains(t, res.LocalReply.Details, "upstream_reset_before_response_started{connection failure}")
}

// A cluster read from a bootstrap (HttpProtocolOptions.http_filters, host
// filter_metadata) runs its upstream filter, here one that holds the
// headers and resumes them from a scheduled callback.
func TestUpstreamClusterFromBootstrap(t *testing.T) {
	be := newBackend(t, 200, "fine")
	bootstrap := `
static_resources:
  clusters:
  - name: providers
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {}}
        http_filters:
        - name: a
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
            dynamic_module_config: {name: testmodule}
            filter_name: a
            filter_config:
              "@type": type.googleapis.com/google.protobuf.Struct
              value:
                request_headers:
                - status: stop
                  continue_after_ms: 5
                  read_metadata: [{ns: aigw, key: backend, source: host}]
        - name: envoy.filters.http.upstream_codec
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec
    load_assignment:
      cluster_name: providers
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: PORT}}}
          metadata: {filter_metadata: {aigw: {backend: bedrock-3}}}
`
	_, port, _ := strings.Cut(be.addr, ":")
	cls, err := harness.LoadClustersYAML("bootstrap", []byte(strings.Replace(bootstrap, "PORT", port, 1)))
	require.NoError(t, err)
	require.Len(t, cls, 1)
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("b", M{})})
	h.MustConfigureRoutes(harness.Route{Name: "r", Cluster: "providers"})
	h.MustConfigureCluster(cls[0])
	res := send(t, h, &harness.Request{}) // header-only: only the scheduled continue resumes it
	require.Equal(t, 200, res.Client.Status)
	require.Equal(t, "fine", string(res.Client.Body))
	require.Equal(t, []string{"md@host aigw backend string=bedrock-3 keys=backend namespaces=aigw route=false"}, streamLogs(res, "md@host"))
	require.Len(t, streamLogs(res, "obs a scheduled-continue"), 1)
	require.Equal(t, 1, res.State.ScheduledDelivered)
}

// A body over the retry buffer limit abandons retries: the first try's 503
// is the answer.
func TestUpstreamRetryBufferLimit(t *testing.T) {
	a := newBackend(t, 503, "busy")
	b := newBackend(t, 200, "fine")
	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{{"within", "0123456789", 200}, {"over", strings.Repeat("x", 40), 503}} {
		t.Run(tc.name, func(t *testing.T) {
			h := scriptHost(t, harness.Options{BufferLimit: 32})
			h.MustConfigure(harness.Chain{script("b", M{})})
			h.MustConfigureRoutes(harness.Route{Name: "r", Cluster: "pool"})
			h.MustConfigureCluster(harness.Cluster{Name: "pool", Hosts: []harness.UpstreamHost{{Address: a.addr}, {Address: b.addr}}})
			res := send(t, h, &harness.Request{Body: []byte(tc.body),
				Headers: harness.Headers{{"x-gateway-destination-endpoint", a.addr + "," + b.addr}}})
			require.Equal(t, tc.status, res.Client.Status)
			require.Equal(t, tc.body, string(res.AttemptRequests[0].Body), "the first try streams the whole body")
		})
	}
}

// Many streams on both workers, each retried once: every try runs on its
// stream's worker with its own filter instances.
func TestUpstreamConcurrentStreams(t *testing.T) {
	a := newBackend(t, 502, "down")
	b := newBackend(t, 200, "up")
	h := upstreamHost(t, harness.Chain{script("a", M{"request_headers": []M{{"status": "stop", "continue_after_ms": 1}}})}, M{},
		harness.UpstreamHost{Address: a.addr}, harness.UpstreamHost{Address: b.addr})
	const n = 24
	var wg sync.WaitGroup
	results := make([]*harness.Result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = h.Send(context.Background(), &harness.Request{Body: []byte("x"),
				Headers: harness.Headers{{"x-gateway-destination-endpoint", a.addr + "," + b.addr}}})
		}(i)
	}
	wg.Wait()
	workers := map[int]bool{}
	for i, res := range results {
		require.NoError(t, errs[i])
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, 2, res.State.Attempts)
		require.Len(t, streamLogs(res, "life a new"), 2)
		require.Len(t, streamLogs(res, "life a destroy"), 2)
		workers[res.Worker] = true
	}
	require.Len(t, workers, 2)
	require.Len(t, a.requests(), n)
	require.Len(t, b.requests(), n)
}

// An upstream filter that rewrites the response body holds the response
// headers until the body is done; it can then fix their content-length,
// and the downstream chain gets the rewritten response.
func TestUpstreamResponseRewrite(t *testing.T) {
	a := newBackend(t, 200, "provider-shaped")
	h := upstreamHost(t, harness.Chain{script("a", M{
		"response_headers": []M{{"status": "stop"}},
		"response_body": []M{{"status": "buffer", "eos_status": "continue",
			"drain":  [][2]any{{"received", 1000}},
			"append": [][2]string{{"buffered", "openai-shaped!"}},
			"set":    [][3]string{{"resp", "content-length", "14"}}}},
	})}, M{"response_headers": []M{{"read_response": []string{"content-length"}}}}, harness.UpstreamHost{Address: a.addr})
	res := send(t, h, &harness.Request{Body: []byte("x")})
	require.Equal(t, 200, res.Client.Status)
	require.Equal(t, "openai-shaped!", string(res.Client.Body))
	require.Equal(t, "14", res.Client.Headers.Get("content-length"))
	require.Equal(t, []string{"resph b content-length=14 n=4"}, streamLogs(res, "resph"))
}
