package test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// directOff is the environment that makes the library call every getter
// and stat through the SDK's handle (abi.Stream's fallback); directOn
// overrides it when the whole suite runs with it.
const (
	directOff = "INFERENCEPOOL_ABI_DIRECT=off"
	directOn  = "INFERENCEPOOL_ABI_DIRECT=on"
)

// The direct ABI calls (abi.Stream, abi.Headers, abi.HeaderValue,
// abi.BodyChunks) and the SDK's handle they fall back to give Envoy and the
// client the same thing: the same exchanges through two libraries, one of
// them forced onto the SDK, end alike (answer, request upstream, metadata,
// destination, stats). Run with the SDK's layout check failing, the direct
// path would be the fallback too; TestDirectABIAllocatesLess shows it is
// not.
func TestDirectABIMatchesTheSDK(t *testing.T) {
	endpoints := chatAndMetricsEndpoints(t, 1) // one to pick: both hosts pick it
	router := map[string]any{"costs": routerCosts, "models": []map[string]any{{"name": "sim-model"}}}
	hosts := map[string]*harness.Host{}
	for name, env := range map[string][]string{"direct": {directOn}, "sdk": {directOff}} {
		h := harness.Start(t, harness.Options{Env: env})
		h.MustConfigure(harness.EnvoyChain(t).WithJSON("ai_router", router).WithJSON("endpoint_picker", pickerConfig(endpoints, nil)))
		waitPicking(t, h, "sim-model", endpoints)
		hosts[name] = h
	}
	before := map[string]*harness.Stats{"direct": hosts["direct"].MustStats(), "sdk": hosts["sdk"].MustStats()}
	for _, tc := range []struct {
		name string
		req  harness.Request
	}{
		{name: "chat", req: harness.Request{Headers: jsonCT, Body: chatReq("sim-model", "say hi", 8)}},
		{name: "headers the filters read and replace", req: harness.Request{
			Headers: harness.Headers{{"content-type", "application/json"}, {"accept-encoding", "gzip"}, {"accept-encoding", "br, identity"},
				{"x-gateway-destination-endpoint", "10.0.0.1:80"}, {"x-gateway-inference-objective", "critical"}},
			Body: chatReq("sim-model", "spoofed destination", 8)}},
		{name: "subset hint as a list", req: harness.Request{Headers: jsonCT, Body: chatReq("sim-model", "subset list", 8),
			MetadataLists: []harness.MetadataList{{Namespace: "envoy.lb.subset_hint", Key: "x-gateway-destination-endpoint-subset", Values: endpoints}}}},
		{name: "subset hint as a string", req: harness.Request{Headers: jsonCT, Body: chatReq("sim-model", "subset string", 8),
			MetadataStrings: []harness.MetadataString{{Namespace: "envoy.lb.subset_hint", Key: "x-gateway-destination-endpoint-subset", Value: endpoints[0]}}}},
		{name: "unknown model", req: harness.Request{Headers: jsonCT, Body: chatReq("nope", "x", 8)}},
		{name: "body in frames", req: harness.Request{Headers: jsonCT, Chunks: chunks(chatReq("sim-model", strings.Repeat("long prompt ", 400), 8), 1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := map[string]*harness.Result{}
			for name, h := range hosts {
				req := tc.req
				req.Cluster = endpoints
				res, err := h.Send(context.Background(), &req)
				require.NoError(t, err)
				results[name] = res
			}
			d, s := results["direct"], results["sdk"]
			require.NotNil(t, d.Client)
			require.Equal(t, s.Client.Status, d.Client.Status)
			require.Equal(t, string(s.Client.Body), string(d.Client.Body))
			require.Equal(t, withoutDate(s.Client.Headers), withoutDate(d.Client.Headers))
			require.Equal(t, s.Endpoint, d.Endpoint)
			require.Equal(t, destination(s), destination(d))
			require.Equal(t, s.State.Metadata, d.State.Metadata)
			require.Equal(t, s.State.RouteCacheClears, d.State.RouteCacheClears)
			require.Equal(t, s.State.Callbacks, d.State.Callbacks, "the same callbacks, one by one")
			if s.Received != nil {
				require.NotNil(t, d.Received)
				for _, h := range []http.Header{s.Received.Headers, d.Received.Headers} {
					h.Del("x-request-id") // random
				}
				require.Equal(t, s.Received.Headers, d.Received.Headers)
				require.Equal(t, string(s.Received.Body), string(d.Received.Body))
			}
		})
	}
	// The token counts both recorded since the warm-ups (each host warmed
	// up its own number of times): the same tags, counts and sums.
	recorded := func(name string) map[string][2]uint64 {
		out := map[string][2]uint64{}
		for _, st := range hosts[name].MustStats().Named("gen_ai.client.token.usage") {
			c, s := st.Count, st.Sum
			for _, b := range before[name].Named(st.Name) {
				if maps.Equal(b.Tags, st.Tags) {
					c, s = c-b.Count, s-b.Sum
				}
			}
			out[fmt.Sprint(st.Tags)] = [2]uint64{c, s}
		}
		return out
	}
	direct := recorded("direct")
	require.NotEmpty(t, direct)
	require.Equal(t, recorded("sdk"), direct)
}

// The 4 KiB exchange of BenchmarkABIRoundTrip, and the same through an
// upstream cluster with ai_upstream, make the same ABI callbacks whether
// the library calls them directly or through the SDK, and the direct calls
// leave almost no Go allocation per exchange: the SDK's own handle, one per
// filter and stream (sdk/go/abi newDymStreamPluginHandle), and the
// background scrapes. Through the SDK every getter and stat allocates.
func TestDirectABIAllocatesLess(t *testing.T) {
	endpoints := metricsEndpoints(t, 10)
	chain := harness.EnvoyChain(t).WithJSON("endpoint_picker", pickerConfig(endpoints, nil))
	for _, tc := range []struct {
		name      string
		opts      harness.BenchOptions
		maxAllocs float64 // direct, per exchange
	}{
		{name: "body=4KiB", maxAllocs: 3},
		{name: "upstream=openai", opts: harness.BenchOptions{Clusters: []harness.Cluster{openAICluster(t, endpoints)},
			Routes: []harness.Route{{Name: "pool", Cluster: "pool"}}}, maxAllocs: 5.5}, // three SDK handles, the scrapes (the translator is kept: 8 before; main about 5.7)
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(env []string) *harness.BenchResult {
				o := tc.opts
				o.Request, o.Response = harness.ChatRequest4KiB(), harness.ChatResponseWithUsage()
				o.N, o.Warmup, o.Chain, o.Settle, o.Env = 2000, 500, chain, 300*time.Millisecond, env
				r, err := harness.RunBench(t, o)
				require.NoError(t, err)
				require.Equal(t, r.N, r.UpstreamOK)
				require.Equal(t, r.N, r.Routed)
				return r
			}
			direct, sdk := run([]string{directOn}), run([]string{directOff})
			require.Equal(t, sdk.Callbacks, direct.Callbacks)
			require.Equal(t, sdk.Hooks, direct.Hooks)
			require.Equal(t, sdk.ClientBytes, direct.ClientBytes)
			require.LessOrEqual(t, direct.GoAllocsPerReq, tc.maxAllocs, "Go allocations per exchange, direct")
			require.Greater(t, sdk.GoAllocsPerReq, direct.GoAllocsPerReq+15, "Go allocations per exchange: SDK %.1f, direct %.1f",
				sdk.GoAllocsPerReq, direct.GoAllocsPerReq)
		})
	}
}

// chatAndMetricsEndpoints are n local servers with the vLLM metrics fixture
// on /metrics and one fixed chat answer with usage on every other path.
func chatAndMetricsEndpoints(tb testing.TB, n int) []string {
	var body []byte
	for _, f := range harness.ChatResponseWithUsage().Frames {
		body = append(body, f...)
	}
	return metricsAndAnswerServers(tb, n, body)
}

func withoutDate(h harness.Headers) harness.Headers {
	var out harness.Headers
	for _, kv := range h {
		if kv[0] != "date" {
			out = append(out, kv)
		}
	}
	return out
}

// One abi.Batch of every kind of op (the test library's batchProbe, run in
// ai_router's request headers hook: header set, remove and reads of them,
// metadata strings and numbers written and read back, an 11 KB value past
// the batch's first room, filter state, attributes, a counter and a
// histogram that do not exist and a counter with too many tags) leaves
// Envoy and the client the same whether it runs in one call from Go or op
// by op through the SDK (INFERENCEPOOL_ABI_DIRECT=off): the same request
// upstream, metadata, callbacks, answer, and each op reports Envoy's own
// answer, failures included.
func TestBatchMatchesTheSDK(t *testing.T) {
	endpoints := chatAndMetricsEndpoints(t, 1)
	results := map[string]*harness.Result{}
	for name, env := range map[string][]string{"direct": {directOn}, "sdk": {directOff}} {
		h := harness.Start(t, harness.Options{Env: env})
		h.MustConfigure(harness.EnvoyChain(t).WithMerged("ai_router", map[string]any{"debug": map[string]any{"batchProbe": true}}).
			WithJSON("endpoint_picker", pickerConfig(endpoints, nil)))
		waitPicking(t, h, "sim-model", endpoints)
		res, err := h.Send(context.Background(), &harness.Request{Cluster: endpoints, Body: chatReq("sim-model", "probe", 8),
			Headers:       harness.Headers{{"content-type", "application/json"}, {"x-batch-remove", "client value"}},
			MetadataLists: []harness.MetadataList{{Namespace: "envoy.lb.subset_hint", Key: "x-gateway-destination-endpoint-subset", Values: endpoints}}})
		require.NoError(t, err)
		require.NotNil(t, res.Client)
		require.Equal(t, 200, res.Client.Status)
		results[name] = res
	}
	d, s := results["direct"], results["sdk"]
	probe := func(r *harness.Result) map[string]any { return r.State.Metadata["inferencepool.batch_probe"] }
	require.Equal(t, float64(1), probe(d)["calls"], "the first batch: one call from Go")
	require.Equal(t, float64(0), probe(s)["calls"], "through the SDK: no batch call")
	require.Equal(t, float64(3), probe(d)["tightCalls"], "a header read with no room: its entries in a call of their own, then the write after it")
	require.Equal(t, float64(0), probe(s)["tightCalls"])
	for _, k := range []string{"calls", "tightCalls"} {
		delete(probe(d), k)
		delete(probe(s), k)
	}
	require.Equal(t, s.State.Metadata, d.State.Metadata)
	roomy, tight, ok := strings.Cut(probe(d)["headers"].(string), " | ")
	require.True(t, ok)
	require.Equal(t, roomy, tight, "both reads see the same map")
	require.Contains(t, roomy, "x-batch-probe=set", "the read sees the writes before it")
	require.NotContains(t, roomy, "x-batch-remove")
	require.Contains(t, roomy, ":path=/v1/chat/completions")
	require.Equal(t, s.State.Callbacks, d.State.Callbacks, "the same callbacks, one by one")
	require.Equal(t, string(s.Client.Body), string(d.Client.Body))
	for _, r := range []*harness.Result{s, d} {
		r.Received.Headers.Del("x-request-id")
	}
	require.Equal(t, s.Received.Headers, d.Received.Headers)
	require.Equal(t, "set", d.Received.Headers.Get("x-batch-probe"))
	require.Empty(t, d.Received.Headers.Values("x-batch-remove"))

	require.Len(t, probe(d)["long"], 11000)
	require.Equal(t, float64(1<<40), probe(d)["uint"])
	require.Equal(t, 2.5, probe(d)["number"])
	got := probe(d)["results"].(string)
	for _, want := range []string{
		"header=true:3:set ", "gone=false:0: ", "long=true:11000:long-value/long-valu ", "number=true:2.5 ", "missing=false:0: ",
		fmt.Sprintf("list=true:%d ", len(endpoints)), "fs=true ", "readfs=true:5:state ",
		fmt.Sprintf("counter=%d ", shared.MetricsNotFound), fmt.Sprintf("histogram=%d ", shared.MetricsNotFound),
		fmt.Sprintf("tags=%d ", shared.MetricsInvalidTags), "conn=true ", "path=true:20:/v1/chat/completions ", "ops=19",
	} {
		require.Contains(t, got, want)
	}
}
