package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// modelServers are n local servers that answer /metrics with the vLLM
// fixture (all equally loaded) and any other request with a small JSON
// body: enough for the picker to pick and for the router to forward.
func modelServers(t *testing.T, n int) []string {
	t.Helper()
	return metricsAndAnswerServers(t, n, []byte(`{"id":"x","object":"list","model":"m"}`))
}

// metricsAndAnswerServers are n local servers with the simulator's metrics
// fixture on /metrics and answer, as JSON, on every other path.
func metricsAndAnswerServers(tb testing.TB, n int, answer []byte) []string {
	tb.Helper()
	expo, err := os.ReadFile("../picker/testdata/vllm_metrics_sim_v0.10.2.txt")
	require.NoError(tb, err)
	var addrs []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				_, _ = w.Write(expo)
				return
			}
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write(answer)
		}))
		tb.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}

// waitDestination sends req until the picker names a destination (its
// first scrapes have landed).
func waitDestination(t *testing.T, h *harness.Host, req *harness.Request) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		if d := destination(res); d != "" && len(strings.Split(d, ",")) == min(3, len(req.Cluster)) {
			return
		}
		require.True(t, time.Now().Before(deadline), "the picker never named a destination")
		time.Sleep(50 * time.Millisecond)
	}
}

// The two deployments, ai_router + endpoint_picker and endpoint_picker
// alone, hash the same prompt bytes for every endpoint kind: with
// rendezvous prefix affinity (a pure function of the prompt's hashes and the
// addresses) two independent proxies, one of each kind, send every prompt
// to the same endpoint. Before endpoint_picker read bodies with ai_router's
// parser, a completion's string prompt kept its quotes and embeddings and
// responses had no prompt at all when it ran alone.
func TestPickerBothDeploymentsHashTheSamePrompt(t *testing.T) {
	addrs := modelServers(t, 8)
	// Only the prompt decides: the prefix scorer alone, no filter (a scrape
	// late on a busy machine would make an endpoint stale, and saturated),
	// affinity that never yields to load, each proxy routing alone
	// (fleet.proxies 1: the other's requests to the same servers are not a
	// fleet's). What differs between the deployments can then only be the
	// bytes they hash.
	cfg := pickerConfig(addrs, map[string]any{"prefix": map[string]any{"mode": "rendezvous", "queueSlack": 1000},
		"scheduler": map[string]any{"filters": []any{}, "scorers": []map[string]any{{"type": "prefix-cache", "weight": 1}}},
		"scrape":    map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1s", "fleet": map[string]any{"proxies": 1}}})
	withRouter := harness.Start(t, harness.Options{})
	withRouter.MustConfigure(pickerChain(t, cfg))
	alone := harness.Start(t, harness.Options{})
	alone.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", cfg))
	warm := &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs}
	waitDestination(t, withRouter, warm)
	waitDestination(t, alone, warm)

	// Long enough for the 8-block (512-byte) rendezvous key.
	text := func(i int) string {
		return fmt.Sprintf("Document %d. ", i) + strings.Repeat(fmt.Sprintf("Context line %d of a shared preamble. ", i), 20)
	}
	kinds := []struct {
		name, path string
		body       func(i int) any
	}{
		{"chat", "/v1/chat/completions", func(i int) any {
			return map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": text(i)}}}
		}},
		{"completion string", "/v1/completions", func(i int) any { return map[string]any{"model": "m", "prompt": text(i)} }},
		{"completion list", "/v1/completions", func(i int) any { return map[string]any{"model": "m", "prompt": []string{text(i)}} }},
		{"embeddings", "/v1/embeddings", func(i int) any { return map[string]any{"model": "m", "input": text(i)} }},
		{"responses", "/v1/responses", func(i int) any {
			return map[string]any{"model": "m", "input": []map[string]string{{"role": "user", "content": text(i)}}}
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			firsts := map[string]bool{}
			for i := 0; i < 12; i++ {
				body, err := json.Marshal(k.body(i))
				require.NoError(t, err)
				var got [2]string
				for j, h := range []*harness.Host{withRouter, alone} {
					// A key's first request goes by load (seen keys): the
					// second one is placed by the prompt's hashes.
					_, err := h.Send(context.Background(), &harness.Request{Path: k.path, Headers: jsonCT, Body: body, Cluster: addrs})
					require.NoError(t, err)
					res, err := h.Send(context.Background(), &harness.Request{Path: k.path, Headers: jsonCT, Body: body, Cluster: addrs})
					require.NoError(t, err)
					require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
					got[j] = strings.Split(destination(res), ",")[0]
					require.NotEmpty(t, got[j])
				}
				require.Equal(t, got[0], got[1], "prompt %d: with ai_router to %s, alone to %s", i, got[0], got[1])
				firsts[got[0]] = true
			}
			// The prompts differ, so affinity spreads them: equal picks are
			// not an accident of every prompt going to one endpoint.
			require.Greater(t, len(firsts), 2)
		})
	}
}

// endpoint_picker alone: a truncated inference body is answered 400 in
// OpenAI's shape (never forwarded); a multipart upload to a path it does not
// parse is routed on load, not refused; nor is a JSON pass-through body.
func TestPickerAloneJudgesOnlyInferenceBodies(t *testing.T) {
	addrs := modelServers(t, 3)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", pickerConfig(addrs, nil)))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})

	multipart := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....WAVE\r\n--b--\r\n"
	for _, tc := range []struct {
		name, path, contentType string
		chunks                  []string
		wantStatus              int
		wantCode                string
	}{
		{name: "truncated chat", path: "/v1/chat/completions", contentType: "application/json",
			chunks: []string{`{"model":"m","messages":[{"role":"user",`, `"content":"cut"}`}, wantStatus: 400, wantCode: "invalid_json"},
		{name: "completion prompt of the wrong type", path: "/v1/completions", contentType: "application/json",
			chunks: []string{`{"model":"m","prompt":{}}`}, wantStatus: 400, wantCode: "invalid_type"},
		{name: "embeddings without input", path: "/v1/embeddings", contentType: "application/json",
			chunks: []string{`{"model":"m"}`}, wantStatus: 400, wantCode: "missing_required_parameter"},
		{name: "multipart transcription", path: "/v1/audio/transcriptions", contentType: "multipart/form-data; boundary=b",
			// One frame: a body streamed on in several frames loses its last
			// one under the route's retry buffering (Envoy's dynamic-module
			// filter moves the last frame into the stream's buffered body,
			// which is the router's retry copy); ai_router's pass-through
			// has the same problem. Reported, not ours to fix here.
			chunks: []string{multipart}, wantStatus: 200},
		{name: "JSON pass-through, not valid", path: "/v1/audio/speech", contentType: "application/json",
			chunks: []string{`{"model":"m","query":`}, wantStatus: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chunks [][]byte
			for _, c := range tc.chunks {
				chunks = append(chunks, []byte(c))
			}
			res, err := h.Send(context.Background(), &harness.Request{Path: tc.path,
				Headers: harness.Headers{{"content-type", tc.contentType}}, Chunks: chunks, Cluster: addrs})
			require.NoError(t, err)
			require.Equal(t, tc.wantStatus, res.Client.Status, string(res.Client.Body))
			if tc.wantStatus != 200 {
				require.Nil(t, res.Received, "a bad body is never forwarded")
				var e struct {
					Error struct{ Message, Type, Code string } `json:"error"`
				}
				require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
				require.Equal(t, tc.wantCode, e.Error.Code)
				require.Equal(t, "invalid_request_error", e.Error.Type)
				return
			}
			require.NotEmpty(t, destination(res), "picked, not left to the fallback")
			require.Equal(t, strings.Join(tc.chunks, ""), string(res.Received.Body), "the body reaches the server whole")
		})
	}
}

// With a subset hint whose endpoints have no metrics, a fail-open pool still
// keeps the request inside the hint (Envoy's fallback policy would pick from
// the whole cluster); a fail-close pool answers 503.
func TestPickerSubsetHintWithoutMetricsStaysInside(t *testing.T) {
	withMetrics := modelServers(t, 1)
	blind := harness.BlindServers(t, 3)
	cluster := append(append([]string{}, withMetrics...), blind...)
	hint := []harness.MetadataList{{Namespace: "envoy.lb.subset_hint", Key: "x-gateway-destination-endpoint-subset", Values: blind[:2]}}
	for _, mode := range []string{"fail-open", "fail-close"} {
		t.Run(mode, func(t *testing.T) {
			h := harness.Start(t, harness.Options{})
			h.MustConfigure(pickerChain(t, pickerConfig(cluster, map[string]any{"failureMode": mode})))
			// The pool has metrics (from the one endpoint outside the hint).
			deadline := time.Now().Add(10 * time.Second)
			for {
				res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: cluster})
				require.NoError(t, err)
				if destination(res) == withMetrics[0] {
					break
				}
				require.True(t, time.Now().Before(deadline), "the picker never had metrics")
				time.Sleep(50 * time.Millisecond)
			}
			served := map[string]bool{}
			for i := 0; i < 12; i++ {
				res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, MetadataLists: hint,
					Body: chatReq("m", fmt.Sprintf("hinted %d", i), 1), Cluster: cluster})
				require.NoError(t, err)
				if mode == "fail-close" {
					require.Equal(t, 503, res.Client.Status)
					require.Contains(t, string(res.Client.Body), `"error"`)
					require.Nil(t, res.Received)
					continue
				}
				require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
				require.ElementsMatch(t, blind[:2], strings.Split(destination(res), ","), "the hinted endpoints, nothing else")
				require.Contains(t, blind[:2], res.Endpoint)
				served[res.Endpoint] = true
			}
			if mode == "fail-open" {
				require.Len(t, served, 2, "blind picks spread over the hint")
			}
		})
	}
}

// The subset hint may be one comma-separated string as well as a list (whose
// entries may themselves be comma-separated).
func TestPickerSubsetHintAsString(t *testing.T) {
	addrs := modelServers(t, 4)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(addrs, nil)))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
	const ns, key = "envoy.lb.subset_hint", "x-gateway-destination-endpoint-subset"
	want := addrs[1:3]
	for _, tc := range []struct {
		name    string
		strings []harness.MetadataString
		lists   []harness.MetadataList
		want    []string // nil: 503
	}{
		{name: "string", strings: []harness.MetadataString{{Namespace: ns, Key: key, Value: want[0] + ", " + want[1]}}, want: want},
		{name: "list of one comma-separated entry", lists: []harness.MetadataList{{Namespace: ns, Key: key, Values: []string{want[0] + "," + want[1]}}}, want: want},
		{name: "string matching nothing", strings: []harness.MetadataString{{Namespace: ns, Key: key, Value: "10.9.9.9:80"}}},
		// (An empty string cannot be told from no hint: the SDK reports an
		// empty metadata string as absent.)
		{name: "string of separators only", strings: []harness.MetadataString{{Namespace: ns, Key: key, Value: " , "}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 4; i++ {
				res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, MetadataStrings: tc.strings, MetadataLists: tc.lists,
					Body: chatReq("m", fmt.Sprintf("hint %s %d", tc.name, i), 1), Cluster: addrs})
				require.NoError(t, err)
				if tc.want == nil {
					require.Equal(t, 503, res.Client.Status)
					continue
				}
				require.Equal(t, 200, res.Client.Status)
				require.ElementsMatch(t, tc.want, strings.Split(destination(res), ","))
			}
		})
	}
}

// A DNS pool is resolved off Envoy's main thread: the config loads, and once
// the name resolves the picker names the endpoint.
func TestPickerDNSPoolResolvesAfterLoad(t *testing.T) {
	addr := modelServers(t, 1)[0]
	port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	require.NoError(t, err)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, map[string]any{"pools": []any{map[string]any{
		"name":      "pool",
		"endpoints": map[string]any{"dns": map[string]any{"name": "localhost", "ports": []int{port}, "interval": "1s"}},
		"scrape":    map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1s"},
	}}}))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "via DNS", 1), Cluster: []string{addr}})
}

// switchableServer answers /metrics with its current exposition (503 while
// it is empty) and anything else with a small JSON body.
type switchableServer struct {
	addr string
	expo atomic.Pointer[string]
}

func newSwitchableServer(t *testing.T, expo string) *switchableServer {
	s := &switchableServer{}
	s.expo.Store(&expo)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			e := *s.expo.Load()
			if e == "" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte(e))
			return
		}
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","model":"m"}`))
	}))
	t.Cleanup(srv.Close)
	s.addr = strings.TrimPrefix(srv.URL, "http://")
	return s
}

func (s *switchableServer) set(expo string) { s.expo.Store(&expo) }

func vllmExpo(waiting, running int) string {
	return fmt.Sprintf("vllm:num_requests_waiting %d\nvllm:num_requests_running %d\nvllm:kv_cache_usage_perc 0.3\n", waiting, running)
}

// A server that went away and came back with fewer slots is not taken for
// the bigger one it was: its learned slot count starts over. A was seen
// running 8 with a queue, B 6; after an outage A runs 6 with a queue, B 5.
// With A's old count, A would look as free as B (one slot left); re-learned,
// A is full and B has a free slot, so every pick goes to B.
func TestPickerRelearnsSlotsAfterRestart(t *testing.T) {
	a, b := newSwitchableServer(t, vllmExpo(1, 8)), newSwitchableServer(t, vllmExpo(1, 6))
	cluster := []string{a.addr, b.addr}
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", pickerConfig(cluster, nil)))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: cluster})

	a.set("") // A goes down long enough to lose its metrics...
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "outage", 1), Cluster: cluster})
		require.NoError(t, err)
		if destination(res) == b.addr {
			break
		}
		require.True(t, time.Now().Before(deadline), "A never lost its metrics")
		time.Sleep(20 * time.Millisecond)
	}
	a.set(vllmExpo(1, 6)) // ...and comes back smaller
	b.set(vllmExpo(1, 5))
	deadline = time.Now().Add(10 * time.Second)
	for {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "back", 1), Cluster: cluster})
		require.NoError(t, err)
		if len(strings.Split(destination(res), ",")) == 2 {
			break // A has metrics again
		}
		require.True(t, time.Now().Before(deadline), "A never came back")
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a few more scrapes of both
	for i := 0; i < 12; i++ {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", fmt.Sprintf("q%d", i), 1), Cluster: cluster})
		require.NoError(t, err)
		require.Equal(t, b.addr, strings.Split(destination(res), ",")[0], "request %d: A is full, B has a slot", i)
	}
}

func sglangExpo(waiting, running, pages int) string {
	return fmt.Sprintf("sglang:cache_config_info{page_size=\"16\",num_pages=\"%d\"} 1\n"+
		"sglang:num_queue_reqs %d\nsglang:num_running_reqs %d\nsglang:token_usage 0.3\n", pages, waiting, running)
}

// SGLang's cache geometry is read from its own labels (page_size,
// num_pages): a server restarted with a smaller KV cache, between two
// scrapes, shows another geometry, and its slot count is learned anew. A was
// seen running 8 with a queue, B 6; after A's restart A runs 6 with a queue,
// B 5: re-learned, A is full and B has a free slot.
func TestPickerSGLangRestartSeenInCacheGeometry(t *testing.T) {
	a, b := newSwitchableServer(t, sglangExpo(1, 8, 4000)), newSwitchableServer(t, sglangExpo(1, 6, 4000))
	cluster := []string{a.addr, b.addr}
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", pickerConfig(cluster, map[string]any{"engine": "sglang"})))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: cluster})
	time.Sleep(200 * time.Millisecond) // both peaks learned

	a.set(sglangExpo(1, 6, 1500)) // restarted with less KV cache: 6 slots
	b.set(sglangExpo(1, 5, 4000))
	time.Sleep(300 * time.Millisecond) // a few scrapes of both
	for i := 0; i < 12; i++ {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", fmt.Sprintf("q%d", i), 1), Cluster: cluster})
		require.NoError(t, err)
		require.Equal(t, b.addr, strings.Split(destination(res), ",")[0], "request %d: A is full, B has a slot", i)
	}
}

// A client that goes away after its request was picked (a reset before
// any answer, or in the middle of one) ends its in-flight count: a client
// opening and dropping streams cannot make an endpoint look busy. Runs in
// both deployments (pickerChain).
func TestPickerInFlightEndsWhenTheClientGoes(t *testing.T) {
	addrs := onceScrapedServers(t, 2)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, onceScrapedPool(addrs)))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
	hdrs := harness.Headers{{":method", "POST"}, {":path", "/v1/chat/completions"}, {":authority", "localhost"},
		{":scheme", "http"}, {"content-type", "application/json"}}
	for i := range 10 {
		s, err := h.Open(harness.StreamOptions{})
		require.NoError(t, err)
		require.NoError(t, s.RequestHeaders(hdrs, false))
		require.NoError(t, s.RequestData(chatReq("m", fmt.Sprintf("dropped %d", i), 1), true))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ev, err := s.Wait(ctx, func(ev []harness.Event) bool { return harness.RequestLeft(ev) || harness.Answered(ev) })
		cancel()
		require.NoError(t, err)
		require.True(t, harness.RequestLeft(ev), "picked and forwarded")
		if i%2 == 1 { // the answer started, then the client went
			require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}}, false))
			require.NoError(t, s.ResponseData([]byte(`{"id":"x",`), false))
		}
		_, err = s.Reset()
		require.NoError(t, err)
	}
	// The per-endpoint gauges follow at most once a second, from a passing
	// request, which is itself in flight then.
	time.Sleep(1100 * time.Millisecond)
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "after", 1), Cluster: addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status)
	st := h.MustStats()
	require.LessOrEqual(t, inFlightGauges(t, st, addrs), uint64(1), "ten dropped streams still counted in flight")
}
