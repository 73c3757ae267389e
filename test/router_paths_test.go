package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// fakeOpenAI is an upstream on 127.0.0.1 that answers every POST on any
// path like an OpenAI server with usage (7 + 5 tokens), and anything else
// with {"ok":true}. It reports the model it was asked for, or the value of
// the x-respond-model request header (a hostile server's made-up name).
type fakeOpenAI struct {
	addr  string
	mu    sync.Mutex
	paths []string
	sse   string // when set, the answer to a request with "stream": true
}

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	u := &fakeOpenAI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.RawPath+"|"+r.URL.Path)
		u.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		if r.Method != "POST" || !gjson.ValidBytes(body) {
			_, _ = io.WriteString(w, `{"ok":true}`)
			return
		}
		u.mu.Lock()
		sse := u.sse
		u.mu.Unlock()
		if sse != "" && gjson.GetBytes(body, "stream").Bool() {
			w.Header().Set("content-type", "text/event-stream")
			_, _ = io.WriteString(w, sse)
			return
		}
		model := r.Header.Get("x-respond-model")
		if model == "" {
			model = gjson.GetBytes(body, "model").Str
		}
		m, _ := json.Marshal(model)
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":%s,"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}`, m)
	}))
	t.Cleanup(srv.Close)
	u.addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// routerOnly is a host running ai_router alone with config, in front of up.
func routerOnly(t *testing.T, config map[string]any) *harness.Host {
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("ai_router").WithJSON("ai_router", config))
	return h
}

type sendOpts struct {
	method, path string
	headers      harness.Headers
	body         string
}

func sendTo(t *testing.T, h *harness.Host, up *fakeOpenAI, o sendOpts) *harness.Result {
	t.Helper()
	hdrs := o.headers
	if o.body != "" && !hdrs.Has("content-type") {
		hdrs = append(hdrs, jsonCT...)
	}
	res, err := h.Send(context.Background(), &harness.Request{Method: o.method, Path: o.path, Headers: hdrs,
		Body: []byte(o.body), Cluster: []string{up.addr}, Retries: harness.NoRetries})
	require.NoError(t, err)
	return res
}

// openAIError decodes a local reply's body, failing unless it is OpenAI's
// error shape.
func openAIError(t *testing.T, res *harness.Result) (code string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message, Type string
			Param         *string
			Code          string
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
	require.NotNil(t, e.Error, string(res.Client.Body))
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.Type)
	require.Equal(t, "application/json", res.Client.Headers.Get("content-type"))
	return e.Error.Code
}

// Issue 7, item 1: every spelling of an inference path the servers behind
// us route to a model endpoint gets the model list, the budget, the costs
// and x-ai-eg-model, as the plain path does.
func TestRouterPathSpellingsAreChecked(t *testing.T) {
	up := newFakeOpenAI(t)
	h := routerOnly(t, map[string]any{
		"models": []map[string]any{{"name": "allowed"}},
		"budget": map[string]any{"header": "x-api-key", "tokens": 1, "window": "1h"},
		"costs":  []map[string]any{{"metadataKey": "llm_total_token", "type": "total"}},
	})
	chat := `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`
	for i, tc := range []struct{ name, path, body string }{
		{"plain", "/v1/chat/completions", chat},
		{"escaped letter (uvicorn decodes it)", "/v1/chat/%63ompletions", chat},
		{"escaped slash (uvicorn decodes it)", "/v1/chat%2Fcompletions", chat},
		{"double and trailing slashes, query", "//v1//chat/completions/?a=1", chat},
		{"dot segments", "/v1/x/../chat/./completions", chat},
		{"vLLM invocations, chat body", "/invocations", chat},
		{"vLLM invocations, completions body", "/invocations", `{"model":%q,"prompt":"hi"}`},
		{"vLLM invocations, escaped", "/%69nvocations", `{"model":%q,"input":"hi"}`},
		{"vLLM rerank", "/v1/rerank", `{"model":%q,"query":"q","documents":["a"]}`},
		{"vLLM anthropic messages", "/v1/messages", `{"model":%q,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := harness.Headers{{"x-api-key", "tenant-" + strconv.Itoa(i)}}

			res := sendTo(t, h, up, sendOpts{path: tc.path, headers: key, body: fmt.Sprintf(tc.body, "gpt-9")})
			require.Equal(t, 404, res.Client.Status, string(res.Client.Body))
			require.Equal(t, "model_not_found", openAIError(t, res))
			require.Nil(t, res.Received, "the model list applies")

			res = sendTo(t, h, up, sendOpts{path: tc.path, headers: append(key, [2]string{"x-ai-eg-model", "evil"}),
				body: fmt.Sprintf(tc.body, "allowed")})
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Equal(t, []string{"allowed"}, res.Received.Headers.Values("X-Ai-Eg-Model"))
			require.GreaterOrEqual(t, res.State.RouteCacheClears, 1)
			require.EqualValues(t, 12, costMetadata(t, res)["llm_total_token"], "costs are written")

			res = sendTo(t, h, up, sendOpts{path: tc.path, headers: key, body: fmt.Sprintf(tc.body, "allowed")})
			require.Equal(t, 429, res.Client.Status, "the spent budget applies: %s", res.Client.Body)
			require.Equal(t, "rate_limit_exceeded", openAIError(t, res))
			require.Nil(t, res.Received)
		})
	}
}

// Issue 7, item 1: a path that is neither checked nor listed gets OpenAI's
// 404 and never reaches a server; the listed ones pass, whatever their body.
func TestRouterUnknownPathsAnd404(t *testing.T) {
	up := newFakeOpenAI(t)
	strict := routerOnly(t, map[string]any{})
	for _, path := range []string{"/generate", "/v1/unknown", "/metrics", "/v1/chat%252Fcompletions", "/v1/audio/transcriptions"} {
		t.Run(path, func(t *testing.T) {
			res := sendTo(t, strict, up, sendOpts{path: path, body: `{"model":"m","text":"hi"}`})
			require.Equal(t, 404, res.Client.Status, string(res.Client.Body))
			require.Equal(t, "unknown_url", openAIError(t, res))
			require.Nil(t, res.Received)
		})
	}
	t.Run("the old default, every unknown path passed, is a listed /*", func(t *testing.T) {
		open := routerOnly(t, map[string]any{"passThroughPaths": []string{"/*"}})
		res := sendTo(t, open, up, sendOpts{path: "/generate", body: `{"text":"hi"}`})
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Equal(t, "/generate", res.Received.Path)
		res = sendTo(t, open, up, sendOpts{path: "/v1/chat/%63ompletions", body: `{"model":"m"}`})
		require.Equal(t, 400, res.Client.Status, "a checked endpoint stays checked")
	})
}

// Issue 7, item 2: on a passed-through path the client's x-ai-eg-model is
// removed and the route cache cleared, so that Envoy routes again without
// it; a multipart body is routed, not parsed.
func TestRouterPassThrough(t *testing.T) {
	up := newFakeOpenAI(t)
	h := routerOnly(t, map[string]any{
		"passThroughPaths": []string{"/health", "/v1/audio/transcriptions", "/v1/responses/*"},
		"budget":           map[string]any{"header": "x-api-key", "tokens": 1, "window": "1h"},
	})

	t.Run("the client's model header is removed and the route chosen again", func(t *testing.T) {
		res := sendTo(t, h, up, sendOpts{method: "GET", path: "/health", headers: harness.Headers{{"x-ai-eg-model", "premium"}}})
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Empty(t, res.Received.Headers.Values("X-Ai-Eg-Model"))
		require.GreaterOrEqual(t, res.State.RouteCacheClears, 1, "the route the client's header chose is dropped")
	})
	t.Run("an empty model header is removed too", func(t *testing.T) {
		res := sendTo(t, h, up, sendOpts{method: "GET", path: "/health", headers: harness.Headers{{"x-ai-eg-model", ""}}})
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Empty(t, res.Upstream.Headers.Values("x-ai-eg-model"))
		require.GreaterOrEqual(t, res.State.RouteCacheClears, 1)
	})
	t.Run("without the header the route stands", func(t *testing.T) {
		res := sendTo(t, h, up, sendOpts{method: "GET", path: "/health?probe=1"})
		require.Equal(t, 200, res.Client.Status)
		require.Zero(t, res.State.RouteCacheClears)
	})
	t.Run("a multipart body is routed as is", func(t *testing.T) {
		body := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--b--\r\n"
		res := sendTo(t, h, up, sendOpts{path: "/v1/audio/transcriptions", body: body,
			headers: harness.Headers{{"content-type", "multipart/form-data; boundary=b"}}})
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Equal(t, body, string(res.Received.Body))
	})
	t.Run("a prefix entry passes what is below it", func(t *testing.T) {
		res := sendTo(t, h, up, sendOpts{method: "GET", path: "/v1/responses/resp_123"})
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	})
	t.Run("a spent key gets nothing through a passed path either", func(t *testing.T) {
		key := harness.Headers{{"x-api-key", "spender"}}
		res := sendTo(t, h, up, sendOpts{path: "/v1/responses", headers: key, body: `{"model":"m","input":"hi"}`})
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		res = sendTo(t, h, up, sendOpts{method: "GET", path: "/v1/responses/resp_1", headers: key})
		require.Equal(t, 429, res.Client.Status)
		require.Nil(t, res.Received)
	})
}

// Issue 7, item 7: a content-length over the limit is answered when the
// headers arrive, before any body is sent.
func TestRouterContentLengthRefusedAtHeaders(t *testing.T) {
	h := routerOnly(t, map[string]any{"maxRequestBodyBytes": 1024})
	s, err := h.Open(harness.StreamOptions{})
	require.NoError(t, err)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "POST"}, {":path", "/v1/chat/completions"},
		{":authority", "localhost"}, {":scheme", "http"}, {"content-type", "application/json"},
		{"content-length", strconv.Itoa(10 << 20)}}, false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Wait(ctx, harness.Answered)
	require.NoError(t, err, "answered with no body sent: %s", harness.Summary(s.Events()))
	c := s.Client()
	require.Equal(t, 413, c.Status)
	require.Contains(t, string(c.Body), `"code":"request_too_large"`)
	_, err = s.End()
	require.NoError(t, err)
}

// Issue 7, item 6: stat tags hold only model names the config names; a
// made-up name (asked by a client or reported by an upstream) is "_OTHER",
// and an overlong one is refused.
func TestRouterStatTagsBounded(t *testing.T) {
	up := newFakeOpenAI(t)
	h := routerOnly(t, map[string]any{"rewrites": []map[string]any{{"model": "alias", "targets": []map[string]any{{"model": "target"}}}}})
	hasTags := func(st *harness.Stats, original, request, response string) bool {
		_, ok := st.Histogram("gen_ai.server.request.duration", "gen_ai.operation.name", "chat", "gen_ai.provider.name", "openai", "gen_ai.original.model", original,
			"gen_ai.request.model", request, "gen_ai.response.model", response, "error.type", "")
		return ok
	}
	chat := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}

	res := sendTo(t, h, up, sendOpts{path: "/v1/chat/completions", body: chat("alias")})
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.True(t, hasTags(h.MustStats(), "alias", "target", "target"), h.MustStats().String())

	random := "made-up-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	res = sendTo(t, h, up, sendOpts{path: "/v1/chat/completions", body: chat(random),
		headers: harness.Headers{{"x-respond-model", "hostile-" + random}}})
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Equal(t, random, res.Received.Headers.Get("X-Ai-Eg-Model"), "the route still sees the name")
	st := h.MustStats()
	require.True(t, hasTags(st, "_OTHER", "_OTHER", "_OTHER"), st.String())
	require.NotContains(t, st.String(), random, "no stat carries a made-up name")

	long := strings.Repeat("m", 257)
	res = sendTo(t, h, up, sendOpts{path: "/v1/chat/completions", body: chat(long)})
	require.Equal(t, 400, res.Client.Status)
	require.Equal(t, "invalid_value", openAIError(t, res))
	require.Nil(t, res.Received)
}

// Issue 7, item 11: the CEL model is the model the client asked for, and
// route_name is the route Envoy chose (after ai_router's x-ai-eg-model).
func TestRouterCELVariables(t *testing.T) {
	up := newFakeOpenAI(t)
	h := routerOnly(t, map[string]any{
		"rewrites": []map[string]any{{"model": "alias", "targets": []map[string]any{{"model": "target"}}}},
		"costs": []map[string]any{
			{"metadataKey": "by_model", "type": "cel", "cel": "model == 'alias' ? 100u : 1u"},
			{"metadataKey": "by_route", "type": "cel", "cel": "route_name == 'alias-route' ? 10u : 2u"},
			{"metadataKey": "by_backend", "type": "cel", "cel": "backend == '" + up.addr + "' ? 5u : 3u"},
		},
	})
	h.MustConfigureRoutes(harness.Route{Name: "alias-route", Header: "x-ai-eg-model", Value: "alias"}, harness.Route{Name: "default"})
	res := sendTo(t, h, up, sendOpts{path: "/v1/chat/completions", body: `{"model":"alias","messages":[{"role":"user","content":"hi"}]}`})
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Contains(t, string(res.Received.Body), `"model":"target"`)
	costs := costMetadata(t, res)
	require.EqualValues(t, 100, costs["by_model"], "model is the requested model, not the rewritten target")
	require.EqualValues(t, 10, costs["by_route"])
	require.EqualValues(t, 5, costs["by_backend"])
}

// Issue 7, item 12: a Responses API stream that fails (an error event, or
// response.failed) is tagged as an error; a request that continues a stored
// response, prompt or conversation without input is valid.
func TestRouterResponsesAPI(t *testing.T) {
	up := newFakeOpenAI(t)
	h := routerOnly(t, map[string]any{"models": []map[string]any{{"name": "m"}}})
	for _, tc := range []struct{ name, body string }{
		{"previous_response_id", `{"model":"m","previous_response_id":"resp_1"}`},
		{"stored prompt", `{"model":"m","prompt":{"id":"pmpt_1","version":"2"}}`},
		{"conversation", `{"model":"m","conversation":"conv_1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := sendTo(t, h, up, sendOpts{path: "/v1/responses", body: tc.body})
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Equal(t, tc.body, string(res.Received.Body))
		})
	}
	res := sendTo(t, h, up, sendOpts{path: "/v1/responses", body: `{"model":"m","instructions":"x"}`})
	require.Equal(t, 400, res.Client.Status, "nothing to answer")

	errorTags := func(errType string) []string {
		return []string{"gen_ai.operation.name", "responses", "gen_ai.provider.name", "openai", "gen_ai.original.model", "m", "gen_ai.request.model", "m",
			"gen_ai.response.model", "m", "error.type", errType}
	}
	for _, tc := range []struct{ name, stream string }{
		{"error event", "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"m\",\"status\":\"in_progress\"}}\n\n" +
			"event: error\ndata: {\"type\":\"error\",\"code\":\"ERR\",\"message\":\"boom\",\"param\":null,\"sequence_number\":2}\n\n"},
		{"response.failed", "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"model\":\"m\",\"status\":\"failed\"," +
			"\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"usage\":{\"input_tokens\":3,\"output_tokens\":0,\"total_tokens\":3}}}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up.mu.Lock()
			up.sse = tc.stream
			up.mu.Unlock()
			before, _ := h.MustStats().Histogram("gen_ai.server.request.duration", errorTags("_OTHER")...)
			res := sendTo(t, h, up, sendOpts{path: "/v1/responses", body: `{"model":"m","input":"hi","stream":true}`})
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Equal(t, tc.stream, string(res.Client.Body))
			after, ok := h.MustStats().Histogram("gen_ai.server.request.duration", errorTags("_OTHER")...)
			require.True(t, ok, h.MustStats().String())
			var n uint64
			if before != nil {
				n = before.Count
			}
			require.Equal(t, n+1, after.Count)
		})
	}
}

// A malformed pass-through list, and the retired rejectUnknownPaths: false,
// are refused when the config loads, naming the field.
func TestRouterPathConfigRefused(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	chain := harness.EnvoyChain(t).Only("ai_router")
	for config, want := range map[string]string{
		`{"passThroughPaths":["health"]}`:                 `passThroughPaths[0]: "health" must start with '/'`,
		`{"passThroughPaths":["/v1/chat%2Fcompletions"]}`: `passThroughPaths[0]`,
		`{"passThroughPaths":["/invocations"]}`:           `an endpoint ai_router checks`,
		`{"passThroughPaths":"/health"}`:                  `passThroughPaths: must be an array`,
		`{"rejectUnknownPaths":false}`:                    `passThroughPaths`,
	} {
		_, err := h.Configure(chain.With("ai_router", []byte(config)))
		var ce *harness.CommandError
		require.ErrorAs(t, err, &ce, config)
		require.Contains(t, ce.Msg, want)
	}
}
