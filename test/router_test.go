package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// routerCosts are AI Gateway-style token costs, one of each type.
var routerCosts = []map[string]any{
	{"metadataKey": "llm_input_token", "type": "input"},
	{"metadataKey": "llm_output_token", "type": "output"},
	{"metadataKey": "llm_total_token", "type": "total"},
	{"metadataKey": "llm_cached_input_token", "type": "cached_input"},
	{"metadataKey": "weighted", "type": "cel", "cel": "input_tokens + 4u * output_tokens"},
}

type usage = harness.Usage

// usageOf reads the usage the simulator reported, from a JSON body or from
// the usage chunk of an SSE stream.
func usageOf(t *testing.T, body []byte) usage {
	t.Helper()
	u, err := harness.ParseUsage(body)
	require.NoError(t, err)
	return u
}

func costMetadata(t *testing.T, res *harness.Result) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for k, v := range res.State.Metadata["io.envoy.ai_gateway"] {
		if k == "gen_ai.provider.name" || k == "backend_name" {
			continue // ai_upstream's strings, not costs
		}
		f, ok := v.(float64)
		require.True(t, ok, "%s: %T", k, v)
		out[k] = f
	}
	return out
}

func routerHost(t *testing.T, sim *harness.Sim, router map[string]any) *harness.Host {
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).
		WithJSON("ai_router", router).
		WithJSON("endpoint_picker", pickerConfig(sim.Addrs, nil)))
	return h
}

// Token accounting through both filters against the simulator: what the
// client gets is exactly what the server sent, the counts are the server's
// own, and the costs land in io.envoy.ai_gateway metadata.
func TestRouterAccountsTokens(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 2, Args: []string{"--inter-token-latency", "2ms"}})
	// Listed, so that the model has stat tags of its own (others are _OTHER).
	h := routerHost(t, sim, map[string]any{"costs": routerCosts, "models": []map[string]any{{"name": sim.Model}}})
	waitPicking(t, h, sim.Model, sim.Addrs)

	for _, tc := range []struct {
		name          string
		stream        bool
		clientUsage   bool // the client asked for stream_options.include_usage
		wantInjection bool // ai_router asks the server for usage itself
	}{
		{name: "json"},
		{name: "stream with include_usage", stream: true, clientUsage: true},
		{name: "stream without include_usage", stream: true, wantInjection: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := map[string]any{"model": sim.Model, "max_tokens": 12,
				"messages": []map[string]string{{"role": "system", "content": "be brief"}, {"role": "user", "content": "count to ten"}}}
			if tc.stream {
				req["stream"] = true
			}
			if tc.clientUsage {
				req["stream_options"] = map[string]any{"include_usage": true}
			}
			body, _ := json.Marshal(req)
			res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: body, Cluster: sim.Addrs})
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			if tc.wantInjection { // less the usage chunk it did not ask for
				require.NotContains(t, string(res.Client.Body), `"choices":[]`)
			} else {
				require.Equal(t, res.UpstreamResponse.Body, res.Client.Body, "the client gets the server's bytes unchanged")
			}
			require.Equal(t, sim.Model, res.Received.Headers.Get("X-Ai-Eg-Model"))
			require.GreaterOrEqual(t, res.State.RouteCacheClears, 1)

			var sent struct {
				StreamOptions *struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			require.NoError(t, json.Unmarshal(res.Received.Body, &sent))
			if tc.wantInjection {
				require.NotNil(t, sent.StreamOptions)
				require.True(t, sent.StreamOptions.IncludeUsage)
				require.Equal(t, res.Received.Headers.Get("Content-Length"), itoa(len(res.Received.Body)))
			} else if !tc.clientUsage {
				require.JSONEq(t, string(body), string(res.Received.Body), "an unchanged request goes through as is")
			}

			u := usageOf(t, res.UpstreamResponse.Body)
			costs := costMetadata(t, res)
			require.EqualValues(t, u.PromptTokens, costs["llm_input_token"])
			require.EqualValues(t, u.CompletionTokens, costs["llm_output_token"])
			require.EqualValues(t, u.TotalTokens, costs["llm_total_token"])
			require.EqualValues(t, 0, costs["llm_cached_input_token"])
			require.EqualValues(t, u.PromptTokens+4*u.CompletionTokens, costs["weighted"])

			st := h.MustStats()
			tags := func(tokenType string) []string {
				return []string{"gen_ai.operation.name", "chat", "gen_ai.provider.name", "openai", "gen_ai.original.model", sim.Model, "gen_ai.request.model", sim.Model,
					"gen_ai.response.model", sim.Model, "error.type", "", "gen_ai.token.type", tokenType}
			}
			in, ok := st.Histogram("gen_ai.client.token.usage", tags("input")...)
			require.True(t, ok, st.String())
			require.Contains(t, in.Values, u.PromptTokens)
			out, ok := st.Histogram("gen_ai.client.token.usage", tags("output")...)
			require.True(t, ok)
			require.Contains(t, out.Values, u.CompletionTokens)
			dur, ok := st.Histogram("gen_ai.server.request.duration", tags("")[:12]...)
			require.True(t, ok)
			require.Positive(t, dur.Count)
			if tc.stream {
				ttft, ok := st.Histogram("gen_ai.server.time_to_first_token", tags("")[:12]...)
				require.True(t, ok)
				require.Positive(t, ttft.Count)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Bad requests are answered by ai_router with the status and OpenAI error
// body a client of OpenAI expects, and never reach a server.
func TestRouterRejectsBadRequests(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{})
	h := routerHost(t, sim, map[string]any{
		"maxRequestBodyBytes": 2048,
		"models":              []map[string]any{{"name": sim.Model}},
		"budget":              map[string]any{"header": "x-api-key", "tokens": 1, "window": "1h"},
	})
	big := `{"model":"sim-model","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`
	for _, tc := range []struct {
		name, method, path, body string
		headers                  harness.Headers
		status                   int
		code                     string
	}{
		{name: "malformed JSON", body: `{"model":"sim-model","messages":[`, status: 400},
		{name: "missing model", body: `{"messages":[{"role":"user","content":"hi"}]}`, status: 400},
		{name: "model not a string", body: `{"model":7,"messages":[{"role":"user","content":"hi"}]}`, status: 400},
		{name: "missing messages", body: `{"model":"sim-model"}`, status: 400},
		{name: "completions without prompt", path: "/v1/completions", body: `{"model":"sim-model"}`, status: 400},
		{name: "unknown model", body: `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, status: 404, code: "model_not_found"},
		{name: "body over the limit", body: big, status: 413},
		{name: "unknown path", path: "/v1/unknown", body: `{}`, status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			res, err := h.Send(context.Background(), &harness.Request{Method: tc.method, Path: path,
				Headers: append(tc.headers, jsonCT...), Body: []byte(tc.body), Cluster: sim.Addrs})
			require.NoError(t, err)
			require.Equal(t, tc.status, res.Client.Status, string(res.Client.Body))
			require.Nil(t, res.Received, "a rejected request must not reach a server")
			var e struct {
				Error struct{ Message, Type, Code string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
			require.NotEmpty(t, e.Error.Message)
			require.NotEmpty(t, e.Error.Type)
			if tc.code != "" {
				require.Equal(t, tc.code, e.Error.Code)
			}
		})
	}

	t.Run("GET /v1/models is answered locally", func(t *testing.T) {
		res, err := h.Send(context.Background(), &harness.Request{Method: "GET", Path: "/v1/models", Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		require.Nil(t, res.Received)
		var list struct {
			Object string                `json:"object"`
			Data   []struct{ ID string } `json:"data"`
		}
		require.NoError(t, json.Unmarshal(res.Client.Body, &list))
		require.Equal(t, "list", list.Object)
		require.Equal(t, sim.Model, list.Data[0].ID)
	})

	t.Run("an exhausted budget gets 429 with retry-after", func(t *testing.T) {
		key := harness.Headers{{"x-api-key", "tenant-a"}}
		res, err := h.Send(context.Background(), &harness.Request{Headers: append(key, jsonCT...),
			Body: chatReq(sim.Model, "spend it", 4), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		res, err = h.Send(context.Background(), &harness.Request{Headers: append(key, jsonCT...),
			Body: chatReq(sim.Model, "again", 4), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 429, res.Client.Status)
		require.NotEmpty(t, res.Client.Headers.Get("retry-after"))
		require.Nil(t, res.Received)
		// Another key still has its budget.
		res, err = h.Send(context.Background(), &harness.Request{Headers: append(harness.Headers{{"x-api-key", "tenant-b"}}, jsonCT...),
			Body: chatReq(sim.Model, "other tenant", 4), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
	})
}

// A rewritten model reaches the server under its new name, and the client
// reads back the name it asked for.
func TestRouterRewritesModel(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{Args: []string{"--inter-token-latency", "2ms"}})
	h := routerHost(t, sim, map[string]any{"rewrites": []map[string]any{
		{"model": "friendly-name", "targets": []map[string]any{{"model": sim.Model, "weight": 1}}}}})
	for _, stream := range []bool{false, true} {
		body, _ := json.Marshal(map[string]any{"model": "friendly-name", "stream": stream, "max_tokens": 5,
			"messages": []map[string]string{{"role": "user", "content": "who are you"}}})
		gzipOK := append(harness.Headers{{"accept-encoding", "gzip, br"}}, jsonCT...)
		res, err := h.Send(context.Background(), &harness.Request{Headers: gzipOK, Body: body, Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Equal(t, "friendly-name", res.Received.Headers.Get("X-Ai-Eg-Model"))
		require.Empty(t, res.Received.Headers.Values("Accept-Encoding"), "a compressed answer could not be mapped back")
		require.Contains(t, string(res.Received.Body), `"model":"`+sim.Model+`"`)
		require.Contains(t, string(res.UpstreamResponse.Body), `"model":"`+sim.Model+`"`)
		require.NotContains(t, string(res.Client.Body), `"model":"`+sim.Model+`"`)
		require.Contains(t, string(res.Client.Body), `"model":"friendly-name"`)
	}
	// Without a rewrite the client's accept-encoding reaches the server.
	body, _ := json.Marshal(map[string]any{"model": sim.Model, "max_tokens": 1,
		"messages": []map[string]string{{"role": "user", "content": "who are you"}}})
	res, err := h.Send(context.Background(), &harness.Request{
		Headers: append(harness.Headers{{"accept-encoding", "gzip"}}, jsonCT...), Body: body, Cluster: sim.Addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Equal(t, "gzip", res.Received.Headers.Get("Accept-Encoding"))
}

// A 1 MiB prompt arriving in many frames is read whole, sent on unchanged,
// and scheduled; the picker and the server see the same bytes.
func TestRouterHugeSplitBody(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{Args: []string{"--max-model-len", "2000000", "--max-request-body-size-mb", "8"}})
	h := routerHost(t, sim, map[string]any{})
	waitPicking(t, h, sim.Model, sim.Addrs)

	body := chatReq(sim.Model, strings.Repeat("All work and no play. ", 1<<20/22), 1)
	var chunks [][]byte
	for off := 0; off < len(body); off += 16 << 10 {
		chunks = append(chunks, body[off:min(off+16<<10, len(body))])
	}
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Chunks: chunks, Cluster: sim.Addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Equal(t, body, res.Received.Body)
	require.NotEmpty(t, destination(res))
	require.Equal(t, sim.Model, res.Received.Headers.Get("X-Ai-Eg-Model"))
}

// Long strings go through the vector scan (transform/stringstop_amd64.s,
// past a string's first 16 bytes), which must end them exactly where a
// JSON reader does. A client's raw control character anywhere in a long
// prompt (in the first words, the 64-byte steps, the last 32 bytes) is
// refused with an OpenAI-style 400 and reaches no server. Escaped quotes
// and backslashes at every offset of a step, and non-ASCII text, are
// text: a model name spelled inside the prompt (`\",\"model\":\"...`) is
// not the request's model, and the server gets the body whole.
func TestRouterLongStringsAreScannedExactly(t *testing.T) {
	ss := probedServers(t, 1)
	addrs := serverAddrs(ss)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).
		WithJSON("ai_router", map[string]any{"models": []map[string]any{{"name": "m"}}}).
		WithJSON("endpoint_picker", pickerConfig(addrs, nil)))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
	// model after the prompt: a string ended early would expose the
	// prompt's own "model" (unknown: 404) or break the JSON (400).
	body := func(content string) []byte {
		return []byte(`{"messages":[{"role":"user","content":"` + content + `"}],"max_tokens":1,"model":"m"}`)
	}
	const n = 300
	for _, at := range []int{0, 7, 15, 16, 40, 63, 64, 100, 200, n - 31, n - 1} {
		t.Run(fmt.Sprintf("a raw control character at %d", at), func(t *testing.T) {
			text := []byte(strings.Repeat("a", n))
			text[at] = 0x01
			res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: body(string(text)), Cluster: addrs})
			require.NoError(t, err)
			require.Equal(t, 400, res.Client.Status, string(res.Client.Body))
			require.Nil(t, res.Received, "a refused request reaches no server")
			var e struct {
				Error struct{ Message, Type string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
			require.NotEmpty(t, e.Error.Message)
		})
	}
	for _, tc := range []struct{ name, content string }{
		{"escaped quotes at every offset", strings.Repeat(`ab\"`, 100) + `\",\"model\":\"gpt-9`},
		{"escaped backslashes before quotes", strings.Repeat(`x\\\\\"`, 70) + `\\`},
		{"non-ASCII text", strings.Repeat("é漢字 ", 60) + `\u00e9\ud83d\ude00`},
		{"a long plain string", strings.Repeat("The quick brown fox. ", 200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := body(tc.content)
			require.True(t, json.Valid(b))
			res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: b, Cluster: addrs})
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Equal(t, "m", res.Received.Headers.Get("X-Ai-Eg-Model"))
			require.JSONEq(t, string(b), string(res.Received.Body), "the server gets the body whole")
		})
	}
}
