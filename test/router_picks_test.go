package test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// routerPicks is envoy.yaml's chain with ai_router alone, picking too: its
// filter_config gains endpointPicker (endpoint_picker's whole
// filter_config) and router merges more of ai_router's fields.
func routerPicks(t *testing.T, picker map[string]any, router map[string]any) harness.Chain {
	t.Helper()
	patch := map[string]any{"endpointPicker": picker}
	for k, v := range router {
		patch[k] = v
	}
	return harness.EnvoyChain(t).Only("ai_router").WithMerged("ai_router", patch)
}

// onceScrapedPool is a pool of addrs whose one scrape stays the picker's
// sample (onceScrapedServers).
func onceScrapedPool(addrs []string) map[string]any {
	return pickerConfig(addrs, map[string]any{"scrape": map[string]any{
		"interval": "50ms", "timeout": "500ms", "staleAfter": "1h", "unhealthyAfter": 1000000}})
}

// ai_router with an endpointPicker picks where endpoint_picker after it
// would: the destination header and metadata, the picker's stats, its
// in-flight counts (a request in flight steers the next ones away until it
// ends), with the facts handed over inside the filter (no filter state)
// and seven hooks a stream instead of fourteen.
func TestRouterPicksWithItsEndpointPicker(t *testing.T) {
	addrs := onceScrapedServers(t, 2)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(routerPicks(t, onceScrapedPool(addrs), nil))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})

	send := func(prompt string) *harness.Result {
		t.Helper()
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", prompt, 1), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		return res
	}
	res := send("hello")
	dest := destination(res)
	require.ElementsMatch(t, addrs, strings.Split(dest, ","))
	md, _ := res.State.MetadataString("envoy.lb", "x-gateway-destination-endpoint")
	require.Equal(t, dest, md)
	require.Equal(t, endpointOf(dest), res.Endpoint)
	require.Equal(t, "m", res.Received.Headers.Get("x-ai-eg-model"), "ai_router's decision")
	require.NotContains(t, res.State.FilterState, "inferencepool.request_facts", "no handoff: one filter")
	require.Equal(t, 7, res.State.Hooks, "one filter's hooks")

	// A request in flight counts: the next ones go to the other endpoint
	// (the samples never change), and once it ended, the first is free again.
	picks := func() uint64 {
		st := h.MustStats()
		var n uint64
		for _, a := range addrs {
			v, _ := st.Counter("endpoint_picker.picks", "pool", "pool", "endpoint", a)
			n += v
		}
		return n
	}
	before := picks()
	done := make(chan *harness.Result)
	go func() {
		r, _ := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "a slow answer", 1), Cluster: addrs})
		done <- r
	}()
	require.Eventually(t, func() bool { return picks() == before+1 }, 5*time.Second, 5*time.Millisecond, "the slow request was picked")
	time.Sleep(50 * time.Millisecond)
	others := map[string]int{}
	for i := range 4 {
		others[endpointOf(destination(send("next "+strings.Repeat("x", i))))]++
	}
	slow := <-done
	require.NotNil(t, slow)
	require.Equal(t, 200, slow.Client.Status)
	busy := endpointOf(destination(slow))
	require.Zero(t, others[busy], "while %s served the slow request, the others went elsewhere: %v", busy, others)
	seen := map[string]bool{}
	after := 0
	for ; after < 20 && !seen[busy]; after++ {
		seen[endpointOf(destination(send("after "+strings.Repeat("y", after))))] = true
	}
	require.True(t, seen[busy], "its in-flight count ended with the stream")
	require.Equal(t, before+1+4+uint64(after), picks(), "one pick a request")
	require.Contains(t, h.MustStats().String(), "histogram gen_ai.client.token.usage", "ai_router's own stats")
}

// Requests ai_router does not read (a pass-through path) are picked the way
// endpoint_picker alone picks them: on load, the body's model for LoRA
// affinity; those it answers itself get no pick; a route naming a pool the
// endpointPicker does not have is a 503 that says so.
func TestRouterPicksEveryPathEndpointPickerWould(t *testing.T) {
	addrs := onceScrapedServers(t, 2)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(routerPicks(t, onceScrapedPool(addrs), map[string]any{"passThroughPaths": []string{"/v1/other"}}))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})

	res, err := h.Send(context.Background(), &harness.Request{Path: "/v1/other", Headers: jsonCT, Body: []byte(`{"model":"m","x":1}`), Cluster: addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status)
	require.NotEmpty(t, destination(res), "a pass-through request is picked too")
	require.Equal(t, `{"model":"m","x":1}`, string(res.Received.Body), "and reaches the server as sent")

	// A request ai_router refuses gets no pick: no in-flight count to leak.
	picks := func() (n uint64) {
		st := h.MustStats()
		for _, a := range addrs {
			v, _ := st.Counter("endpoint_picker.picks", "pool", "pool", "endpoint", a)
			n += v
		}
		return n
	}
	before := picks()
	for _, bad := range []string{`{"model":`, `{"messages":[]}`, `{"model":"m","messages":"not a list"}`} {
		res, err = h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: []byte(bad), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 400, res.Client.Status, bad)
		require.Contains(t, string(res.Client.Body), `"error"`, "an OpenAI-shaped error")
		require.Nil(t, res.Received)
	}
	require.Equal(t, before, picks())

	// A client's own destination header never survives.
	res, err = h.Send(context.Background(), &harness.Request{Headers: append(harness.Headers{{"x-gateway-destination-endpoint", "10.0.0.1:1"}}, jsonCT...),
		Body: chatReq("m", "hello", 1), Cluster: addrs})
	require.NoError(t, err)
	require.NotContains(t, destination(res), "10.0.0.1:1")

	h.MustConfigureRoutes(harness.Route{Name: "r", PerFilter: harness.PerFilterJSON("ai_router", map[string]any{"pool": "c"})})
	res, err = h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "hello", 1), Cluster: addrs})
	require.NoError(t, err)
	require.Equal(t, 503, res.Client.Status)
	require.Contains(t, string(res.Client.Body), `pool \"c\"`)
	require.Nil(t, res.Received)
}

// One pool per model with one filter: ai_router sets x-ai-eg-model and
// clears the route cache, the route that matches names the pool in
// ai_router's own per-route config, and its endpointPicker picks in that
// pool, in the same hook.
func TestRouterPicksThePoolOfTheRoute(t *testing.T) {
	a, b := onceScrapedServers(t, 2), onceScrapedServers(t, 1)
	cluster := append(append([]string(nil), a...), b...)
	pool := func(name string, addrs []string) map[string]any {
		return map[string]any{"name": name, "endpoints": map[string]any{"static": addrs},
			"scrape": map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1h", "unhealthyAfter": 1000000}}
	}
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(routerPicks(t, map[string]any{"pools": []any{pool("a", a), pool("b", b)}}, map[string]any{"passThroughPaths": []string{"/v1/other"}}))
	route := func(name, model, p string) harness.Route {
		r := harness.Route{Name: name, PerFilter: harness.PerFilterJSON("ai_router", map[string]any{"pool": p})}
		if model != "" {
			r.Header, r.Value = "x-ai-eg-model", model
		}
		return r
	}
	h.MustConfigureRoutes(route("b", "model-b", "b"), route("default", "", "a"))
	require.Eventually(t, func() bool {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("model-a", "warm up", 1), Cluster: cluster})
		require.NoError(t, err)
		return strings.Count(destination(res), ",") == 1
	}, 10*time.Second, 20*time.Millisecond, "pool a never picked")
	for i := range 4 {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("model-b", "for b "+strings.Repeat("b", i), 1), Cluster: cluster})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, b[0], destination(res), "pool b")
		require.Equal(t, "b", res.State.Route)
		res, err = h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("model-a", "for a "+strings.Repeat("a", i), 1), Cluster: cluster})
		require.NoError(t, err)
		require.ElementsMatch(t, a, strings.Split(destination(res), ","), "pool a")
	}
	// A client cannot choose pool b with the model header on a path
	// ai_router passes through: the header goes, the route is chosen
	// again, and the pick happens on the new route.
	for _, spelling := range []string{"x-ai-eg-model", "X-AI-EG-Model"} {
		res, err := h.Send(context.Background(), &harness.Request{Path: "/v1/other",
			Headers: append(harness.Headers{{spelling, "model-b"}}, jsonCT...), Body: []byte(`{"model":"model-b"}`), Cluster: cluster})
		require.NoError(t, err)
		require.Equal(t, "default", res.State.Route, spelling)
		require.ElementsMatch(t, a, strings.Split(destination(res), ","), "%s: pool a, not the client's", spelling)
		require.Empty(t, res.Received.Headers.Get("x-ai-eg-model"))
	}
}

// A bad endpointPicker is refused when the config loads, naming the field.
func TestRouterPickerConfigRefusedNamingTheField(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	for _, tc := range []struct {
		picker any
		want   string
	}{
		{map[string]any{"pools": []any{map[string]any{"name": "p", "endpoints": map[string]any{"static": []string{"nope"}}}}}, `"endpointPicker": pools[0].endpoints`},
		{"p", `"endpointPicker": want an object`},
		{map[string]any{}, `"endpointPicker"`},
	} {
		_, err := h.Configure(harness.EnvoyChain(t).Only("ai_router").WithMerged("ai_router", map[string]any{"endpointPicker": tc.picker}))
		var ce *harness.CommandError
		require.ErrorAs(t, err, &ce)
		require.Contains(t, ce.Msg, tc.want)
	}
}

// README.md's one-filter bootstrap: ai_router alone, its endpointPicker's
// pools, and the model-b route naming pool b in ai_router's per-route
// config; model-b requests reach pool b's server only.
func TestRouterPicksREADMEBootstrap(t *testing.T) {
	simA := harness.StartSim(t, harness.SimOptions{DataParallel: 2})
	simB := harness.StartSim(t, harness.SimOptions{Model: "model-b"})
	cluster := append(append([]string(nil), simA.Addrs...), simB.Addrs...)
	bootstrap := readmeBootstrap(t, "onefilter-bootstrap")
	chain, err := harness.LoadChainYAML("README.md", bootstrap)
	require.NoError(t, err)
	require.Len(t, chain, 1)
	routes, err := harness.LoadRoutesYAML("README.md", bootstrap)
	require.NoError(t, err)
	require.Len(t, routes, 2)
	require.Contains(t, routes[0].PerFilter, "ai_router")
	// The README's pools are DNS names; here they are the simulators.
	pools := twoPools(simA.Addrs, simB.Addrs)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(chain.WithMerged("ai_router", map[string]any{"endpointPicker": pools}))
	h.MustConfigureRoutes(routes...)
	send := twoPoolSender(t, h, simA, simB, cluster)
	for i := range 4 {
		res := send("model-b", "for b "+strings.Repeat("b", i))
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, simB.Addrs[0], res.Endpoint)
		res = send(simA.Model, "for a "+strings.Repeat("a", i))
		require.Equal(t, 200, res.Client.Status)
		require.Contains(t, simA.Addrs, res.Endpoint)
	}
}

// pickerChain is envoy.yaml's chain with endpoint_picker's filter_config
// cfg; with INFERENCEPOOL_TEST_ONE_FILTER=1 it is ai_router alone, picking
// with cfg as its endpointPicker, so the picker tests check that mode
// picks as the two filters do (make test runs them both ways).
func pickerChain(t testing.TB, cfg any) harness.Chain {
	if os.Getenv("INFERENCEPOOL_TEST_ONE_FILTER") == "1" {
		return harness.EnvoyChain(t).Only("ai_router").WithMerged("ai_router", map[string]any{"endpointPicker": cfg})
	}
	return harness.EnvoyChain(t).WithJSON("endpoint_picker", cfg)
}

// With ai_router picking, a pool behind an upstream chain (ai_upstream,
// an OpenAI-compatible backend) gets every exchange as with two filters:
// routed by the pick, translated per attempt, the same three header edits
// (model, destination, authorization), in half the downstream hooks.
func TestRouterPicksForAnUpstreamChain(t *testing.T) {
	endpoints := metricsEndpoints(t, 2)
	cfg := pickerConfig(endpoints, nil)
	opts := harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: harness.ChatResponseWithUsage(),
		N: 50, Warmup: 10, Settle: 100 * time.Millisecond,
		Clusters: []harness.Cluster{openAICluster(t, endpoints)}, Routes: []harness.Route{{Name: "pool", Cluster: "pool"}}}
	opts.Chain = harness.EnvoyChain(t).WithJSON("endpoint_picker", cfg)
	two, err := harness.RunBench(t, opts)
	require.NoError(t, err)
	opts.Chain = routerPicks(t, cfg, nil)
	one, err := harness.RunBench(t, opts)
	require.NoError(t, err)
	for _, r := range []*harness.BenchResult{two, one} {
		require.Equal(t, r.N, r.UpstreamOK, "every exchange reached the upstream (local replies %d)", r.LocalReplies)
		require.Equal(t, r.N, r.Routed, "every exchange had a destination")
		require.EqualValues(t, 3, r.Callbacks["http_set_header"], "header edits per exchange: %v", r.Callbacks)
	}
	require.InDelta(t, two.HooksPerReq-7, one.HooksPerReq, 0.01, "one filter's hooks fewer")
}
