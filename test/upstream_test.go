package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

// Issue 8's ai_upstream filter through the real library and abihost's
// upstream step: a cluster whose upstream chain runs ai_upstream once per
// attempt, with ai_router downstream metering what the client gets.

const (
	anthropicKey = "sk-ant-FILE-KEY-0123456789"
	openaiKey    = "sk-openai-FILE-KEY-9876543210"
	clientKey    = "client-own-gateway-key"
)

// hostBackend is the host metadata that names a host's backend (AI
// Gateway's namespace and key).
func hostBackend(name string) map[string]map[string]any {
	return map[string]map[string]any{"aigateway.envoy.io": {"per_route_rule_backend_name": name}}
}

// providerGateway runs ai_router downstream (costs from the usage it
// meters), a route to cluster "providers" and that cluster with ai_upstream.
func providerGateway(t *testing.T, upstream map[string]any, hosts ...harness.UpstreamHost) *harness.Host {
	t.Helper()
	return providerGatewayWith(t, map[string]any{"costs": meteringCosts}, upstream, hosts...)
}

// providerGatewayWith is providerGateway with ai_router's config.
func providerGatewayWith(t *testing.T, router, upstream map[string]any, hosts ...harness.UpstreamHost) *harness.Host {
	t.Helper()
	h := harness.Start(t, harness.Options{LogEvents: true})
	h.MustConfigure(harness.EnvoyChain(t).Only("ai_router").WithJSON("ai_router", router))
	h.MustConfigureRoutes(harness.Route{Name: "providers", Cluster: "providers"})
	cfg, err := json.Marshal(upstream)
	require.NoError(t, err)
	h.MustConfigureCluster(harness.Cluster{Name: "providers", Hosts: hosts,
		Filters: harness.Chain{{Name: "ai_upstream", Config: cfg}}})
	return h
}

// chatRequest is a client's chat completion, with the client's own key
// for the gateway in both spellings a provider could take.
func chatRequest(body string) *harness.Request {
	return &harness.Request{Body: []byte(body), Headers: harness.Headers{
		{"content-type", "application/json"}, {"authorization", "Bearer " + clientKey}, {"x-api-key", clientKey}}}
}

const chatJSON = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me about the lighthouse."}]}`

// requireNoClientKey checks that nothing of the client's key reached a
// provider.
func requireNoClientKey(t *testing.T, r fakeprovider.Recorded) {
	t.Helper()
	fakeprovider.RequireNotSent(t, r, clientKey)
}

func TestUpstreamAnthropicJSON(t *testing.T) {
	fake := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, fakeprovider.AnthropicMessage)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("claude")})

	res, err := h.Send(context.Background(), chatRequest(chatJSON))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))

	// The request as Anthropic expects it (the fake decoded it with the
	// SDK's MessageNewParams and checked key, version and length).
	got := fake.Requests()
	require.Len(t, got, 1)
	require.Equal(t, "/v1/messages", got[0].Path)
	require.Equal(t, anthropicKey, got[0].Header.Get("x-api-key"))
	require.Empty(t, got[0].Header.Get("authorization"))
	requireNoClientKey(t, got[0])
	var p anthropic.MessageNewParams
	require.NoError(t, json.Unmarshal(got[0].Body, &p))
	require.EqualValues(t, 64, p.MaxTokens)
	require.Equal(t, "Be brief.", p.System[0].Text)
	require.Len(t, p.Messages, 1)
	require.Equal(t, strconv.Itoa(len(got[0].Body)), res.AttemptRequests[0].Headers.Get("content-length"),
		"the held headers carry the translated body's length")

	// The answer as an OpenAI client expects it.
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, "chat.completion", string(cc.Object))
	require.Equal(t, "The lighthouse keeper waved.", cc.Choices[0].Message.Content)
	require.Equal(t, "stop", cc.Choices[0].FinishReason)
	require.EqualValues(t, 26, cc.Usage.PromptTokens, "input + cache reads + cache writes")
	require.EqualValues(t, 4, cc.Usage.PromptTokensDetails.CachedTokens)
	require.EqualValues(t, 7, cc.Usage.CompletionTokens)
	require.Equal(t, "application/json", res.Client.Headers.Get("content-type"))

	// ai_router metered the provider's own usage.
	costs := costMetadata(t, res)
	require.EqualValues(t, 26, costs["llm_input_token"])
	require.EqualValues(t, 7, costs["llm_output_token"])
	require.EqualValues(t, 33, costs["llm_total_token"])
}

func TestUpstreamAnthropicStream(t *testing.T) {
	fake := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		fakeprovider.WriteAnthropicEvents(t, w)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("claude")})

	for _, asked := range []bool{false, true} {
		t.Run(fmt.Sprintf("client asked for usage %v", asked), func(t *testing.T) {
			body := `{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"A story?"}]}`
			if asked {
				body = `{"model":"claude-sonnet-4-5","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"A story?"}]}`
			}
			res, err := h.Send(context.Background(), chatRequest(body))
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			got := fake.Requests()
			var p anthropic.MessageNewParams
			require.NoError(t, json.Unmarshal(got[len(got)-1].Body, &p))
			require.EqualValues(t, 4096, p.MaxTokens, "the backend's default max_tokens")
			require.Contains(t, string(got[len(got)-1].Body), `"stream":true`)

			// Chunks as an OpenAI client reads them.
			var text strings.Builder
			var usageChunks int
			var finish string
			events := strings.Split(strings.TrimSuffix(string(res.Client.Body), "\n\n"), "\n\n")
			require.Equal(t, "data: [DONE]", events[len(events)-1])
			for _, ev := range events[:len(events)-1] {
				data, ok := strings.CutPrefix(ev, "data: ")
				require.True(t, ok, "%q", ev)
				var c openai.ChatCompletionChunk
				require.NoError(t, json.Unmarshal([]byte(data), &c), data)
				require.Equal(t, "chat.completion.chunk", string(c.Object))
				if len(c.Choices) == 0 {
					usageChunks++
					require.EqualValues(t, 33, c.Usage.PromptTokens)
					require.EqualValues(t, 12, c.Usage.CompletionTokens)
					continue
				}
				text.WriteString(c.Choices[0].Delta.Content)
				if c.Choices[0].FinishReason != "" {
					finish = c.Choices[0].FinishReason
				}
			}
			require.Equal(t, "Once upon a time", text.String())
			require.Equal(t, "stop", finish)
			if asked {
				require.Equal(t, 1, usageChunks)
			} else {
				require.Zero(t, usageChunks, "ai_router strips the usage chunk it asked for")
			}

			costs := costMetadata(t, res)
			require.EqualValues(t, 33, costs["llm_input_token"])
			require.EqualValues(t, 12, costs["llm_output_token"])
		})
	}
}

// Each Anthropic event goes to the client as soon as its line is complete:
// the upstream frames are fed one by one into the attempt and the client
// has the translated chunk before the next frame.
func TestUpstreamAnthropicStreamsAsItArrives(t *testing.T) {
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: "127.0.0.1:9", Metadata: hostBackend("claude")})
	s, err := h.Open(harness.StreamOptions{})
	require.NoError(t, err)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "POST"}, {":path", "/v1/chat/completions"},
		{":authority", "localhost"}, {":scheme", "http"}, {"content-type", "application/json"}}, false))
	require.NoError(t, s.RequestData([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`), true))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Wait(ctx, func(ev []harness.Event) bool {
		a := harness.AttemptRequests(ev)
		return len(a) == 1 && a[0].Complete
	})
	require.NoError(t, err)
	require.NoError(t, s.AttemptResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "text/event-stream"}}, false))
	sent := 0
	for i, ev := range fakeprovider.AnthropicEvents {
		frame := "event: x\ndata: " + ev + "\n\n"
		// Cut the frame in two: the first half alone sends nothing new.
		require.NoError(t, s.AttemptResponseData([]byte(frame[:len(frame)/2]), false))
		require.Len(t, clientBody(s), sent, "event %d: half a line is held", i)
		require.NoError(t, s.AttemptResponseData([]byte(frame[len(frame)/2:]), i == len(fakeprovider.AnthropicEvents)-1))
		if strings.Contains(ev, "text_delta") {
			require.Greater(t, len(clientBody(s)), sent, "event %d went on at once", i)
			require.Contains(t, string(clientBody(s)[sent:]), `"content":`)
		}
		sent = len(clientBody(s))
	}
	body := string(clientBody(s))
	require.Contains(t, body, `"content":"Once upon"`)
	require.True(t, strings.HasSuffix(body, "data: [DONE]\n\n"), body)
	require.NotContains(t, body, `"choices":[]`, "ai_router strips the usage chunk it asked for")
	_, err = s.End()
	require.NoError(t, err)
}

func TestUpstreamAnthropicErrors(t *testing.T) {
	fake := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		fakeprovider.WriteAnthropicError(w, 429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("claude")})

	t.Run("provider error in OpenAI's shape", func(t *testing.T) {
		res, err := h.Send(context.Background(), chatRequest(chatJSON))
		require.NoError(t, err)
		require.Equal(t, 429, res.Client.Status)
		var e struct{ Error openai.Error }
		require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
		require.Equal(t, "requests", e.Error.Type)
		require.Equal(t, "rate_limit_exceeded", e.Error.Code)
		require.Contains(t, e.Error.Message, "per-minute rate limit")
	})
	t.Run("request the backend cannot serve is answered here", func(t *testing.T) {
		n := len(fake.Requests())
		res, err := h.Send(context.Background(), chatRequest(`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		require.Equal(t, 400, res.Client.Status)
		require.NotNil(t, res.LocalReply)
		var e struct{ Error openai.Error }
		require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
		require.Equal(t, "n", e.Error.Param)
		require.Len(t, fake.Requests(), n, "nothing reached the provider")
		require.NotContains(t, string(res.Client.Body), anthropicKey)
	})
}

func TestUpstreamOpenAICompatible(t *testing.T) {
	fake := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if r.Header.Get("authorization") != "Bearer "+openaiKey || r.Path != "/v1beta/openai/chat/completions" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"message":"bad key or path","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "gemini", "schema": "openai", "pathPrefix": "/v1beta/openai", "model": "gemini-2.5-flash", "apiKeyFile": fakeprovider.KeyFile(t, openaiKey)}}},
		harness.UpstreamHost{Address: fake.Addr}) // no host metadata: the only backend serves

	res, err := h.Send(context.Background(), chatRequest(`{"model":"fast","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	got := fake.Requests()
	require.Len(t, got, 1)
	requireNoClientKey(t, got[0])
	require.Empty(t, got[0].Header.Get("x-api-key"))
	require.Equal(t, "gemini-2.5-flash", fakeprovider.JSONString(got[0].Body, "model"), "the backend's model name")
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc))
	require.Equal(t, "fast", cc.Model, "the client's model name comes back")
	require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
	costs := costMetadata(t, res)
	require.EqualValues(t, 11, costs["llm_input_token"])
	require.EqualValues(t, 5, costs["llm_output_token"])
}

// Fallback between backends of one cluster: the router retries on the
// next host, and each attempt gets its own backend's translation, from the
// original request, whatever the previous attempt wrote into the shared
// request headers.
func TestUpstreamFallbackAcrossBackends(t *testing.T) {
	var poolStatus, claudeStatus atomic.Int32
	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if s := int(poolStatus.Load()); s != 200 {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(s)
			io.WriteString(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	claude := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		if s := int(claudeStatus.Load()); s != 200 {
			fakeprovider.WriteAnthropicError(w, s, "overloaded_error", "Overloaded")
			return
		}
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, fakeprovider.AnthropicMessage)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "claude", "schema": "anthropic", "model": "claude-sonnet-4-5", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: pool.Addr, Metadata: hostBackend("pool")},
		harness.UpstreamHost{Address: claude.Addr, Metadata: hostBackend("claude")})
	send := func(order ...string) *harness.Result {
		req := chatRequest(`{"model":"llama-3-8b","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}`)
		req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", strings.Join(order, ",")})
		req.RetriableStatus = []int{429, 503}
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		return res
	}

	for _, status := range []int{503, 429} {
		t.Run(fmt.Sprintf("pool answers %d, Anthropic serves", status), func(t *testing.T) {
			poolStatus.Store(int32(status))
			claudeStatus.Store(200)
			res := send(pool.Addr, claude.Addr)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Len(t, res.Attempts, 2)
			require.Equal(t, status, res.Attempts[0].Status)
			first, second := res.AttemptRequests[0].Headers, res.AttemptRequests[1].Headers
			require.Equal(t, "/v1/chat/completions", first.Get(":path"))
			require.Empty(t, first.Get("authorization"), "the client's key never reaches the pool")
			require.Empty(t, first.Get("x-api-key"))
			require.Equal(t, "/v1/messages", second.Get(":path"))
			require.Equal(t, anthropicKey, second.Get("x-api-key"))
			got := claude.Requests()
			var p anthropic.MessageNewParams
			require.NoError(t, json.Unmarshal(got[len(got)-1].Body, &p))
			require.Equal(t, "claude-sonnet-4-5", string(p.Model))
			var cc openai.ChatCompletion
			require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
			require.Equal(t, "The lighthouse keeper waved.", cc.Choices[0].Message.Content)
			require.Equal(t, "llama-3-8b", cc.Model, "the client's model name")
			costs := costMetadata(t, res)
			require.EqualValues(t, 26, costs["llm_input_token"], "the serving provider's usage")
		})
	}

	t.Run("Anthropic overloaded, the pool serves from the original request", func(t *testing.T) {
		poolStatus.Store(200)
		claudeStatus.Store(529)
		res := send(claude.Addr, pool.Addr)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Len(t, res.Attempts, 2)
		// 529 is not a retriable status of the policy: the router retried on
		// the 503 ai_upstream handed it (Anthropic's overloaded, mapped).
		require.Equal(t, 529, res.Attempts[0].Status)
		first, second := res.AttemptRequests[0].Headers, res.AttemptRequests[1].Headers
		require.Equal(t, "/v1/messages", first.Get(":path"))
		// The retry starts from attempt 1's rewrites in the shared map: every
		// header ai_upstream owns is set again from the original values.
		require.Equal(t, "/v1/chat/completions", second.Get(":path"))
		require.Empty(t, second.Get("x-api-key"))
		require.Empty(t, second.Get("anthropic-version"))
		got := pool.Requests()
		last := got[len(got)-1]
		require.Equal(t, "/v1/chat/completions", last.Path)
		require.Equal(t, "llama-3-8b", fakeprovider.JSONString(last.Body, "model"), "the OpenAI body, not attempt 1's Anthropic one")
		require.Equal(t, strconv.Itoa(len(last.Body)), last.Header.Get("content-length"))
		var cc openai.ChatCompletion
		require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
		require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
		costs := costMetadata(t, res)
		require.EqualValues(t, 11, costs["llm_input_token"])
	})
}

// A host naming a backend the filter does not have is refused, and a
// config whose key file is missing or empty does not load.
func TestUpstreamConfigAndUnknownBackend(t *testing.T) {
	fake := fakeprovider.New(t, fakeprovider.OpenAIAnswer)
	h := providerGateway(t, map[string]any{"backends": []map[string]any{{"name": "pool", "schema": "openai"}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("elsewhere")})
	res, err := h.Send(context.Background(), chatRequest(chatJSON))
	require.NoError(t, err)
	require.Equal(t, 500, res.Client.Status)
	require.Empty(t, fake.Requests())

	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	for name, tc := range map[string]struct {
		cfg  string
		want string
	}{
		"missing key file": {cfg: `{"backends":[{"name":"a","schema":"anthropic","apiKeyFile":"/nonexistent/key"}]}`, want: "backends[0].apiKeyFile"},
		"empty key file":   {cfg: `{"backends":[{"name":"a","schema":"anthropic","apiKeyFile":"` + empty + `"}]}`, want: "backends[0].apiKeyFile"},
		"unknown schema":   {cfg: `{"backends":[{"name":"a","schema":"bedrock"}]}`, want: "backends[0].schema"},
		"unknown default":  {cfg: `{"backends":[{"name":"a","schema":"openai"}],"defaultBackend":"b"}`, want: "defaultBackend"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.ConfigureCluster(harness.Cluster{Name: "other", Hosts: []harness.UpstreamHost{{Address: fake.Addr}},
				Filters: harness.Chain{{Name: "ai_upstream", Config: []byte(tc.cfg)}}})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// README.md's provider bootstrap, its "models" cluster as written (the
// upstream chain, the host metadata naming each host's backend), with the
// hosts and the key file swapped for the test's: the pool answers 503 and
// the retry reaches Anthropic with Anthropic's translation. abihost has no
// priorities: the destination list names the pool, then the provider host,
// as previous_priorities would order them.
func TestREADMEProviderBootstrapFallback(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- providers-bootstrap:start -->")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "<!-- providers-bootstrap:end -->")
	require.True(t, ok)
	block = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(block), "```yaml"), "```")
	clusters, err := harness.LoadClustersYAML("README.md", []byte(block))
	require.NoError(t, err)
	require.Len(t, clusters, 2)
	models := clusters[0]
	require.Equal(t, "models", models.Name)
	require.Len(t, models.Hosts, 2)

	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		w.WriteHeader(503)
		io.WriteString(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
	})
	claude := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, fakeprovider.AnthropicMessage)
	}))
	models.Hosts[0].Address, models.Hosts[1].Address = pool.Addr, claude.Addr
	cfg := string(models.Filters[0].Config)
	require.Contains(t, cfg, "/etc/secrets/anthropic/api-key")
	models.Filters[0].Config = []byte(strings.Replace(cfg, "/etc/secrets/anthropic/api-key", fakeprovider.KeyFile(t, anthropicKey), 1))

	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("ai_router").WithJSON("ai_router", map[string]any{"costs": meteringCosts}))
	h.MustConfigureRoutes(harness.Route{Name: "models", Cluster: "models"})
	h.MustConfigureCluster(models)
	req := chatRequest(`{"model":"llama-3-8b","messages":[{"role":"user","content":"hi"}]}`)
	req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", pool.Addr + "," + claude.Addr})
	res, err := h.Send(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Len(t, res.Attempts, 2)
	require.Equal(t, 503, res.Attempts[0].Status)
	require.Len(t, pool.Requests(), 1)
	requireNoClientKey(t, pool.Requests()[0])
	got := claude.Requests()
	require.Len(t, got, 1)
	var p anthropic.MessageNewParams
	require.NoError(t, json.Unmarshal(got[0].Body, &p))
	require.Equal(t, "claude-sonnet-4-5", string(p.Model), "the README's model for the Anthropic backend")
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc))
	require.Equal(t, "llama-3-8b", cc.Model)
	require.EqualValues(t, 26, costMetadata(t, res)["llm_input_token"])
}

func TestUpstreamAzureOpenAI(t *testing.T) {
	const deployment = "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
	fake := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if r.Header.Get("api-key") != openaiKey || r.Path != deployment {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "azure", "schema": "azure_openai", "apiVersion": "2024-10-21", "apiKeyFile": fakeprovider.KeyFile(t, openaiKey)}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("azure")})
	res, err := h.Send(context.Background(), chatRequest(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	got := fake.Requests()
	require.Len(t, got, 1)
	require.Equal(t, deployment, got[0].Path)
	requireNoClientKey(t, got[0])
	require.Empty(t, got[0].Header.Get("authorization"))
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc))
	require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
	require.EqualValues(t, 16, costMetadata(t, res)["llm_total_token"])
}

// A rotated key file reaches the provider without a reload of the config:
// the library checks the file at most once a second from the request path.
func TestUpstreamKeyRotationThroughABI(t *testing.T) {
	var want atomic.Value
	want.Store(anthropicKey)
	fake := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if r.Header.Get("x-api-key") != want.Load().(string) {
			fakeprovider.WriteAnthropicError(w, 401, "authentication_error", "invalid x-api-key")
			return
		}
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, fakeprovider.AnthropicMessage)
	})
	key := fakeprovider.KeyFile(t, anthropicKey)
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": key}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("claude")})
	res, err := h.Send(context.Background(), chatRequest(chatJSON))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))

	const rotated = "sk-ant-ROTATED-key-000111"
	tmp := key + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(rotated+"\n"), 0o600))
	require.NoError(t, os.Rename(tmp, key)) // as a secret volume swaps it
	want.Store(rotated)
	require.Eventually(t, func() bool {
		res, err := h.Send(context.Background(), chatRequest(chatJSON))
		require.NoError(t, err)
		return res.Client.Status == 200
	}, 10*time.Second, 200*time.Millisecond, "the rotated key is used within about a second")
	got := fake.Requests()
	require.Equal(t, rotated, got[len(got)-1].Header.Get("x-api-key"))
	for _, l := range h.Logs() {
		require.NotContains(t, l.Msg, rotated)
		require.NotContains(t, l.Msg, anthropicKey)
	}
}

// An error a provider sends under a 200 (an error object, a body of
// another shape, a blocked prompt) is only known at the body's end:
// ai_upstream holds the response headers of a whole-body translation until
// then, so the client sees the error's status, and the router can retry on
// it like on any error status.
// cutMarker makes the fake Anthropic send half a message and close.
const cutMarker = "<cut>"

func TestUpstreamErrorInsideA200(t *testing.T) {
	var poolStatus atomic.Int32
	var claudeBody atomic.Value
	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if s := int(poolStatus.Load()); s != 200 {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(s)
			io.WriteString(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	claude := fakeprovider.New(t, fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
		w.Header().Set("content-type", "application/json")
		body := claudeBody.Load().(string) // always under a 200
		if body == cutMarker {
			w.Header().Set("content-length", strconv.Itoa(len(fakeprovider.AnthropicMessage)))
			io.WriteString(w, fakeprovider.AnthropicMessage[:len(fakeprovider.AnthropicMessage)/2])
			return // short of its content-length: the server closes the connection
		}
		io.WriteString(w, body)
	}))
	const geminiPrefix = "/v1beta/models/gemini-2.5-flash"
	google := fakeprovider.New(t, fakeprovider.Gemini(geminiPrefix, func(h http.Header) bool { return h.Get("x-goog-api-key") == googleKey },
		func(w http.ResponseWriter, _ bool, _ *fakeprovider.GeminiRequest) {
			w.Header().Set("content-type", "application/json")
			io.WriteString(w, fakeprovider.GeminiBlocked)
		}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "claude", "schema": "anthropic", "model": "claude-sonnet-4-5", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)},
		{"name": "google", "schema": "gemini", "model": "gemini-2.5-flash", "apiKeyFile": fakeprovider.KeyFile(t, googleKey)}}},
		harness.UpstreamHost{Address: pool.Addr, Metadata: hostBackend("pool")},
		harness.UpstreamHost{Address: claude.Addr, Metadata: hostBackend("claude")},
		harness.UpstreamHost{Address: google.Addr, Metadata: hostBackend("google")})
	send := func(retriable []int, order ...string) *harness.Result {
		req := chatRequest(`{"model":"llama-3-8b","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}`)
		req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", strings.Join(order, ",")})
		req.RetriableStatus = retriable
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		return res
	}
	requireOpenAIError := func(t *testing.T, res *harness.Result, status int, code any) {
		t.Helper()
		require.Equal(t, status, res.Client.Status, string(res.Client.Body))
		require.Equal(t, "application/json", res.Client.Headers.Get("content-type"))
		require.Equal(t, code, jsonPath(t, res.Client.Body, "error", "code"), string(res.Client.Body))
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code       any
	}{
		{"an Anthropic error object", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 500, "overloaded"},
		{"a body that is not a message", `<html>maintenance</html>`, 502, ""},
	} {
		t.Run(tc.name+" goes out with its status", func(t *testing.T) {
			claudeBody.Store(tc.body)
			res := send([]int{503}, claude.Addr)
			require.Len(t, res.Attempts, 1)
			require.Equal(t, 200, res.Attempts[0].Status, "the provider said 200")
			requireOpenAIError(t, res, tc.status, tc.code)
		})
	}

	t.Run("the router retries an error inside a 200 on the pool", func(t *testing.T) {
		claudeBody.Store(`{"type":"error","error":{"type":"api_error","message":"Internal"}}`)
		poolStatus.Store(200)
		res := send([]int{500, 503}, claude.Addr, pool.Addr)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Len(t, res.Attempts, 2)
		require.Equal(t, "/v1/chat/completions", res.AttemptRequests[1].Headers.Get(":path"))
		var cc openai.ChatCompletion
		require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
		require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
	})

	t.Run("an answer cut before its end is retried on the pool, its headers never sent", func(t *testing.T) {
		// A hostile or failing provider: 200, then half a message and a
		// closed connection. The held headers never reached the router, so
		// the cut is a reset before the response started: retried.
		claudeBody.Store(cutMarker)
		poolStatus.Store(200)
		res := send([]int{503}, claude.Addr, pool.Addr)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.Len(t, res.Attempts, 2)
		var cc openai.ChatCompletion
		require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
		require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
		require.NotContains(t, string(res.Client.Body), "lighthouse", "nothing of the cut answer")
	})

	t.Run("a prompt Gemini blocked under a 200 is a 400", func(t *testing.T) {
		res := send([]int{503}, google.Addr)
		require.Len(t, res.Attempts, 1)
		requireOpenAIError(t, res, 400, "content_filter")
	})

	t.Run("a good answer keeps its 200 and its usage", func(t *testing.T) {
		claudeBody.Store(fakeprovider.AnthropicMessage)
		res := send([]int{503}, claude.Addr)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		require.EqualValues(t, 26, costMetadata(t, res)["llm_input_token"])
	})
}
