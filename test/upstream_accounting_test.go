package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// What ai_router accounts for an answer ai_upstream translated: the
// provider that served (gen_ai.provider.name on the GenAI stats, the last
// attempt's), the prompt-cache writes Anthropic reports apart, and answers
// whose end comes with the headers or with trailers.

// genAISeries returns the series of a GenAI stat with these provider and
// (for token usage; "" for the others) token type tags.
func genAISeries(st *harness.Stats, name, provider, tokenType string) []harness.Stat {
	var out []harness.Stat
	for _, s := range st.Named(name) {
		if s.Tags["gen_ai.provider.name"] == provider && s.Tags["gen_ai.token.type"] == tokenType {
			out = append(out, s)
		}
	}
	return out
}

// recordedValues lists every value recorded in those series.
func recordedValues(series []harness.Stat) []uint64 {
	var out []uint64
	for _, s := range series {
		out = append(out, s.Values...)
	}
	return out
}

func gatewayMetadata(res *harness.Result, key string) any {
	return res.State.Metadata["io.envoy.ai_gateway"][key]
}

// The GenAI stats name the provider that served the answer: the pool's
// OpenAI-compatible servers, or Anthropic when a retry fell back to it
// (the last attempt's provider, not the first's).
func TestUpstreamProviderInStats(t *testing.T) {
	var poolStatus atomic.Int32
	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if s := int(poolStatus.Load()); s != 200 {
			w.WriteHeader(s)
			io.WriteString(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	claude := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, fakeprovider.AnthropicMessage)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: pool.Addr, Metadata: hostBackend("pool")},
		harness.UpstreamHost{Address: claude.Addr, Metadata: hostBackend("claude")})
	send := func() *harness.Result {
		req := chatRequest(chatJSON)
		req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", pool.Addr + "," + claude.Addr})
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		return res
	}

	poolStatus.Store(200)
	res := send()
	require.Len(t, res.Attempts, 1)
	require.Equal(t, "openai", gatewayMetadata(res, "gen_ai.provider.name"))
	require.Equal(t, "pool", gatewayMetadata(res, "backend_name"))
	st := h.MustStats()
	require.Equal(t, []uint64{11}, recordedValues(genAISeries(st, "gen_ai.client.token.usage", "openai", "input")))
	require.Empty(t, genAISeries(st, "gen_ai.server.request.duration", "anthropic", ""))

	poolStatus.Store(503)
	res = send()
	require.Len(t, res.Attempts, 2)
	require.Equal(t, "anthropic", gatewayMetadata(res, "gen_ai.provider.name"), "the last attempt's provider")
	require.Equal(t, "claude", gatewayMetadata(res, "backend_name"))
	st = h.MustStats()
	require.Equal(t, []uint64{26}, recordedValues(genAISeries(st, "gen_ai.client.token.usage", "anthropic", "input")))
	require.Equal(t, []uint64{7}, recordedValues(genAISeries(st, "gen_ai.client.token.usage", "anthropic", "output")))
	require.Equal(t, []uint64{4}, recordedValues(genAISeries(st, "gen_ai.client.token.usage", "anthropic", "cached_input")))
	dur := genAISeries(st, "gen_ai.server.request.duration", "anthropic", "")
	require.Len(t, dur, 1)
	require.EqualValues(t, 1, dur[0].Count)
	require.Equal(t, []uint64{11}, recordedValues(genAISeries(st, "gen_ai.client.token.usage", "openai", "input")), "the first answer only")
}

// The provider tag takes only the names ai_upstream writes: a value another
// filter put under the key is _OTHER (Envoy never frees a stat), and a
// cluster without ai_upstream (a pool) is "openai".
func TestUpstreamProviderTagBounded(t *testing.T) {
	fake := fakeprovider.New(t, fakeprovider.OpenAIAnswer)
	h := meteringRouter(t, 1, map[string]any{})
	for _, tc := range []struct{ written, want string }{
		{"", "openai"},
		{"made-up-provider-0001", "_OTHER"},
		{"made-up-provider-0002", "_OTHER"},
		{"Anthropic", "_OTHER"},
		{"anthropic", "anthropic"},
	} {
		req := chatRequest(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		req.Cluster = []string{fake.Addr}
		if tc.written != "" {
			req.MetadataStrings = []harness.MetadataString{{Namespace: "io.envoy.ai_gateway", Key: "gen_ai.provider.name", Value: tc.written}}
		}
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
	}
	seen := map[string]uint64{}
	for _, s := range h.MustStats().Named("gen_ai.server.request.duration") {
		seen[s.Tags["gen_ai.provider.name"]] += s.Count
	}
	require.Equal(t, map[string]uint64{"openai": 1, "_OTHER": 3, "anthropic": 1}, seen)
}

// Anthropic's cache writes reach the metadata (ai_upstream's
// cache_creation_input_tokens), the costs (type cache_creation_input and
// the CEL variable) and the token stats, JSON and streamed.
func TestUpstreamAnthropicCacheWrites(t *testing.T) {
	var stream atomic.Bool
	fake := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		if stream.Load() {
			fakeprovider.WriteAnthropicEvents(t, w)
			return
		}
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, fakeprovider.AnthropicMessage)
	}))
	costs := append(append([]map[string]any{}, meteringCosts...),
		map[string]any{"metadataKey": "llm_cache_write_token", "type": "cache_creation_input"},
		// Fresh input at 1, cache reads at a tenth, cache writes at 1.25.
		map[string]any{"metadataKey": "billed", "type": "cel",
			"cel": "(input_tokens - cached_input_tokens - cache_creation_input_tokens) * 100u + cached_input_tokens * 10u + cache_creation_input_tokens * 125u"})
	h := providerGatewayWith(t, map[string]any{"costs": costs}, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("claude")})

	for _, tc := range []struct {
		name                 string
		stream               bool
		body                 string
		writes, reads, input uint64
	}{
		{"json", false, chatJSON, 2, 4, 26},
		{"stream", true, `{"model":"m","stream":true,"messages":[{"role":"user","content":"A story?"}]}`, 3, 5, 33},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream.Store(tc.stream)
			res, err := h.Send(context.Background(), chatRequest(tc.body))
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.EqualValues(t, tc.writes, gatewayMetadata(res, "cache_creation_input_tokens"), "ai_upstream's metadata")
			c := costMetadata(t, res)
			require.EqualValues(t, tc.writes, c["llm_cache_write_token"])
			require.EqualValues(t, (tc.input-tc.reads-tc.writes)*100+tc.reads*10+tc.writes*125, c["billed"])
			require.EqualValues(t, tc.input, c["llm_input_token"])
			require.Contains(t, recordedValues(genAISeries(h.MustStats(), "gen_ai.client.token.usage", "anthropic", "cache_creation_input")), tc.writes)
		})
	}
}

// attemptStream opens a stream through providerGateway's cluster, sends a
// chat request and waits until the attempt's request reached the wire;
// the test then answers the attempt itself.
func attemptStream(t *testing.T, h *harness.Host, body string) *harness.Stream {
	t.Helper()
	s, err := h.Open(harness.StreamOptions{})
	require.NoError(t, err)
	require.NoError(t, s.SetRetryPolicy(0, false, nil))
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "POST"}, {":path", "/v1/chat/completions"},
		{":authority", "localhost"}, {":scheme", "http"}, {"content-type", "application/json"}}, false))
	require.NoError(t, s.RequestData([]byte(body), true))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Wait(ctx, func(ev []harness.Event) bool {
		a := harness.AttemptRequests(ev)
		return len(a) == 1 && a[0].Complete
	})
	require.NoError(t, err)
	return s
}

// A response whose end comes with its trailers (HTTP/2) or with its
// headers still gets its translation's end: the JSON message held whole,
// the closing error event of a cut stream, an error body for a bare status.
func TestUpstreamResponseEndsWithoutBodyEnd(t *testing.T) {
	h := providerGatewayWith(t, map[string]any{"costs": meteringCosts}, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: "127.0.0.1:9", Metadata: hostBackend("claude")})

	t.Run("JSON message, then trailers", func(t *testing.T) {
		s := attemptStream(t, h, chatJSON)
		require.NoError(t, s.AttemptResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}}, false))
		require.NoError(t, s.AttemptResponseData([]byte(fakeprovider.AnthropicMessage[:40]), false))
		require.NoError(t, s.AttemptResponseData([]byte(fakeprovider.AnthropicMessage[40:]), false))
		require.NoError(t, s.AttemptResponseTrailers(harness.Headers{{"x-trailer", "1"}}))
		var cc openai.ChatCompletion
		require.NoError(t, json.Unmarshal(clientBody(s), &cc), "%q", clientBody(s))
		require.Equal(t, "The lighthouse keeper waved.", cc.Choices[0].Message.Content)
		st, err := s.End()
		require.NoError(t, err)
		require.EqualValues(t, 26, st.Metadata["io.envoy.ai_gateway"]["llm_input_token"], "metered from the translated body")
		require.EqualValues(t, 2, st.Metadata["io.envoy.ai_gateway"]["cache_creation_input_tokens"])
		_, estimated := st.Metadata["io.envoy.ai_gateway"]["usage_estimate"]
		require.False(t, estimated)
	})

	t.Run("stream cut short, then trailers", func(t *testing.T) {
		s := attemptStream(t, h, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		require.NoError(t, s.AttemptResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "text/event-stream"}}, false))
		for _, ev := range fakeprovider.AnthropicEvents[:4] {
			require.NoError(t, s.AttemptResponseData([]byte("data: "+ev+"\n\n"), false))
		}
		require.NoError(t, s.AttemptResponseTrailers(harness.Headers{{"x-trailer", "1"}}))
		body := string(clientBody(s))
		require.Contains(t, body, `"content":"Once upon"`)
		events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
		last := events[len(events)-1]
		require.Contains(t, last, `"error":`, "the stream ends with an error event: %s", body)
		require.Contains(t, last, "before message_stop")
		_, err := s.End()
		require.NoError(t, err)
	})

	t.Run("a bare error status", func(t *testing.T) {
		s := attemptStream(t, h, chatJSON)
		require.NoError(t, s.AttemptResponseHeaders(harness.Headers{{":status", "529"}}, true))
		c := s.Client()
		require.NotNil(t, c)
		require.Equal(t, 503, c.Status, "Anthropic's overloaded is OpenAI's 503")
		var e struct{ Error openai.Error }
		require.NoError(t, json.Unmarshal(clientBody(s), &e), "%q", clientBody(s))
		require.Equal(t, "server_error", e.Error.Type)
		require.Contains(t, e.Error.Message, "529")
		require.Equal(t, "application/json", c.Headers.Get("content-type"))
		_, err := s.End()
		require.NoError(t, err)
	})
}

// An Anthropic attempt removes accept-encoding (its answer is read to be
// translated); the retry to the pool gets the original value back.
func TestUpstreamRetryRestoresAcceptEncoding(t *testing.T) {
	pool := fakeprovider.New(t, fakeprovider.OpenAIAnswer)
	claude := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		fakeprovider.WriteAnthropicError(w, 529, "overloaded_error", "Overloaded")
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: pool.Addr, Metadata: hostBackend("pool")},
		harness.UpstreamHost{Address: claude.Addr, Metadata: hostBackend("claude")})
	req := chatRequest(chatJSON)
	req.Headers = append(req.Headers, [2]string{"accept-encoding", "gzip, br"},
		[2]string{"x-gateway-destination-endpoint", claude.Addr + "," + pool.Addr})
	res, err := h.Send(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Len(t, res.AttemptRequests, 2)
	require.Empty(t, res.AttemptRequests[0].Headers.Values("accept-encoding"), "Anthropic's answer must come plain")
	require.Equal(t, "gzip", res.AttemptRequests[1].Headers.Get("accept-encoding"), "ai_router's value (gzip only) again")
	got := pool.Requests()
	require.Equal(t, "gzip", got[len(got)-1].Header.Get("accept-encoding"))
	require.Equal(t, "openai", gatewayMetadata(res, "gen_ai.provider.name"))
}
