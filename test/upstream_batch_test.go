package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// originalRequestKey is ai_upstream's filter state key for the request's
// original :path and accept-encoding (module/ai_upstream.go).
const originalRequestKey = "envoy-inferencepool.ai_upstream.original_request"

// ai_upstream makes each hook's callbacks (the host's backend name, the
// original request in the filter state, the provider metadata, the header
// edits, the final status) in one call from Go through abi.Batch, and op
// by op through the SDK with INFERENCEPOOL_ABI_DIRECT=off. Envoy, the
// providers and the client see the same either way: the same exchanges
// through two libraries end alike (answer, every attempt's request as the
// codec sent it, metadata, filter state, local replies, the number of
// callbacks), on the paths that write in each hook: an overridden model,
// a translated JSON answer and stream, a retry to another provider, a
// request without a body (translated in its headers hook), a local reply
// for a request the backend cannot serve and for a host naming no known
// backend. Route "seeded" goes to a cluster whose ai_upstream finds the
// original-request key already set to an empty value (the test build's
// seedFilterState): it reads none, and Envoy refuses its own set of the
// key (a first value is read-only) in the middle of the batch; the ops
// after it still run, as through the SDK.
func TestUpstreamBatchMatchesTheSDK(t *testing.T) {
	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if s, _ := strconv.Atoi(r.Header.Get("x-answer-status")); s != 0 {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(s)
			io.WriteString(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	claude := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if fakeprovider.IsAnthropicStream(r) {
			// In one write with its length: the same frames on both hosts.
			var b strings.Builder
			for _, ev := range fakeprovider.AnthropicEvents {
				b.WriteString("event: " + fakeprovider.JSONString([]byte(ev), "type") + "\ndata: " + ev + "\n\n")
			}
			w.Header().Set("content-type", "text/event-stream; charset=utf-8")
			w.Header().Set("content-length", strconv.Itoa(b.Len()))
			io.WriteString(w, b.String())
			return
		}
		fakeprovider.WriteAnthropicMessage(w)
	})
	nowhere := fakeprovider.New(t, fakeprovider.OpenAIAnswer)
	upstream := map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai", "model": "pool-model", "apiKeyFile": fakeprovider.KeyFile(t, openaiKey)},
		{"name": "claude", "schema": "anthropic", "model": "claude-sonnet-4-5", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}}
	hosts := []harness.UpstreamHost{{Address: pool.Addr, Metadata: hostBackend("pool")}, {Address: claude.Addr, Metadata: hostBackend("claude")},
		{Address: nowhere.Addr, Metadata: hostBackend("elsewhere")}}
	seeded := map[string]any{"debug": map[string]any{"seedFilterState": map[string]string{originalRequestKey: ""}}}
	for k, v := range upstream {
		seeded[k] = v
	}
	gateways := map[string]*harness.Host{}
	for name, env := range map[string][]string{"direct": {directOn}, "sdk": {directOff}} {
		h := harness.Start(t, harness.Options{Env: env})
		h.MustConfigure(harness.EnvoyChain(t).Only("ai_router").WithJSON("ai_router", map[string]any{"costs": meteringCosts}))
		h.MustConfigureRoutes(harness.Route{Name: "seeded", Header: "x-route", Value: "seeded", Cluster: "seeded"},
			harness.Route{Name: "providers", Cluster: "providers"})
		for cluster, cfg := range map[string]map[string]any{"providers": upstream, "seeded": seeded} {
			raw, err := json.Marshal(cfg)
			require.NoError(t, err)
			h.MustConfigureCluster(harness.Cluster{Name: cluster, Hosts: hosts, Filters: harness.Chain{{Name: "ai_upstream", Config: raw}}})
		}
		gateways[name] = h
	}
	const chat = `{"model":"llama-3-8b","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}`
	const stream = `{"model":"llama-3-8b","max_tokens":32,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	to := func(req *harness.Request, dest ...string) *harness.Request {
		for _, d := range dest {
			req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", d})
		}
		req.RetriableStatus = []int{503}
		return req
	}
	seed := func(req *harness.Request) *harness.Request {
		req.Headers = append(req.Headers, [2]string{"x-route", "seeded"})
		return req
	}
	// GET /v1/models passes ai_router (it lists no models): a request
	// without a body reaches ai_upstream.
	getModels := func() *harness.Request {
		return &harness.Request{Method: "GET", Path: "/v1/models?limit=5", Headers: harness.Headers{{"authorization", "Bearer " + clientKey},
			{"accept-encoding", "gzip"}, {"x-api-key", clientKey}}}
	}
	for _, tc := range []struct {
		name   string
		req    func() *harness.Request
		status int
		local  bool // ai_upstream answered
	}{
		{name: "openai, model overridden, client keys and encodings", req: func() *harness.Request {
			r := chatRequest(chat)
			r.Headers = append(r.Headers, [2]string{"accept-encoding", "gzip"}, [2]string{"accept-encoding", "br"})
			return to(r, pool.Addr)
		}, status: 200},
		{name: "anthropic JSON", req: func() *harness.Request { return to(chatRequest(chat), claude.Addr) }, status: 200},
		{name: "anthropic stream", req: func() *harness.Request { return to(chatRequest(stream), claude.Addr) }, status: 200},
		{name: "pool 503, retried to anthropic", req: func() *harness.Request {
			r := chatRequest(chat)
			r.Headers = append(r.Headers, [2]string{"x-answer-status", "503"})
			return to(r, pool.Addr+","+claude.Addr)
		}, status: 200},
		{name: "request without a body", req: func() *harness.Request { return to(getModels(), pool.Addr) }, status: 200},
		{name: "untranslatable request: a local reply", req: func() *harness.Request {
			r := chatRequest(`{"model":"llama-3-8b","input":"hi"}`)
			r.Path = "/v1/embeddings"
			return to(r, claude.Addr)
		}, status: 404, local: true},
		{name: "host names no backend: a local reply", req: func() *harness.Request { return to(chatRequest(chat), nowhere.Addr) }, status: 500, local: true},
		{name: "filter state set refused, without a body", req: func() *harness.Request { return seed(to(getModels(), pool.Addr)) }, status: 200},
		{name: "filter state set refused, retried", req: func() *harness.Request {
			r := chatRequest(chat)
			r.Headers = append(r.Headers, [2]string{"x-answer-status", "503"})
			return seed(to(r, pool.Addr+","+claude.Addr))
		}, status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := map[string]*harness.Result{}
			for name, h := range gateways {
				res, err := h.Send(context.Background(), tc.req())
				require.NoError(t, err)
				require.NotNil(t, res.Client)
				require.Equal(t, tc.status, res.Client.Status, "%s: %s", name, res.Client.Body)
				require.Equal(t, tc.local, res.LocalReply != nil, name)
				results[name] = res
			}
			d, s := results["direct"], results["sdk"]
			require.Equal(t, stable(s.Client.Body), stable(d.Client.Body))
			require.Equal(t, withoutDate(s.Client.Headers), withoutDate(d.Client.Headers))
			require.Equal(t, s.LocalReply, d.LocalReply)
			require.Equal(t, len(s.AttemptRequests), len(d.AttemptRequests))
			for i := range s.AttemptRequests {
				sa, da := s.AttemptRequests[i], d.AttemptRequests[i]
				require.Equal(t, withoutRequestID(sa.Headers), withoutRequestID(da.Headers), "attempt %d", i)
				require.Equal(t, string(sa.Body), string(da.Body), "attempt %d", i)
				require.NotContains(t, string(da.Body)+da.Headers.Get("authorization")+da.Headers.Get("x-api-key"), clientKey)
			}
			require.Equal(t, s.State.Metadata, d.State.Metadata)
			delete(s.State.FilterState, "inferencepool.request_facts") // a random token
			delete(d.State.FilterState, "inferencepool.request_facts")
			require.Equal(t, s.State.FilterState, d.State.FilterState)
			require.Equal(t, s.State.Hooks, d.State.Hooks, "the same hooks")
			require.Equal(t, s.State.Callbacks, d.State.Callbacks, "the same callbacks")
			require.Equal(t, s.State.LocalReplies, d.State.LocalReplies)
		})
	}

	t.Run("the refused set leaves the seed, and the original request is read from the headers", func(t *testing.T) {
		res, err := gateways["direct"].Send(context.Background(), seed(to(getModels(), pool.Addr)))
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, "", string(res.State.FilterState[originalRequestKey]), "Envoy kept the first value")
		sent := res.AttemptRequests[0].Headers
		require.Equal(t, "/v1/models?limit=5", sent.Get(":path"))
		require.Equal(t, "Bearer "+openaiKey, sent.Get("authorization"), "the edits after the refused op ran")
		require.Empty(t, sent.Get("x-api-key"))
		require.Equal(t, "gzip", sent.Get("accept-encoding"))
		require.Equal(t, "openai", res.State.Metadata["io.envoy.ai_gateway"]["gen_ai.provider.name"], "the writes before it ran")
	})
}

var createdField = regexp.MustCompile(`"created":\d+`)

// stable is a body with its creation time (the translators' clock) made
// one.
func stable(b []byte) string { return createdField.ReplaceAllString(string(b), `"created":0`) }

func withoutRequestID(h harness.Headers) harness.Headers {
	var out harness.Headers
	for _, kv := range h {
		if kv[0] != "x-request-id" {
			out = append(out, kv)
		}
	}
	return out
}
