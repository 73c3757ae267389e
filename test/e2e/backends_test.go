package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/googletoken/googletokentest"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
)

// The provider backends of README.md ("Provider backends": the Google and
// Bedrock bootstraps, and the pool-to-provider fallback) in a real Envoy,
// mirroring test/upstream_test.go, upstream_gemini_test.go and
// upstream_bedrock_test.go. Every fake is TLS, as the bootstraps reach
// providers, and decodes what it gets with the provider's SDK types
// (test/fakeprovider); the client is openai-go.

const (
	e2eGoogleKey   = "AIza-E2E-FILE-KEY-google-0123456789"
	e2eVertexToken = "ya29.e2e-vertex-access-token"
	e2eOpenAIKey   = "sk-openai-E2E-FILE-KEY-9876543210"

	geminiPath = "/v1beta/models/gemini-2.5-flash"
	vertexPath = "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-pro"
	// bedrockModel and bedrockRegion are the README Bedrock backend's.
	bedrockModel  = "anthropic.claude-3-5-haiku-20241022-v1:0"
	bedrockRegion = "us-east-1"
)

// providerBootstrap rewrites README.md's bootstrap block name for a test:
// each old string of replace (a key file's path, a backend) replaced by its
// new one, in order, the listener on 127.0.0.1:listen, an admin listener on admin,
// and every cluster STATIC on the address hosts names for it (a fake).
func providerBootstrap(t *testing.T, name string, listen, admin int, hosts map[string]string, replace [][2]string) map[string]any {
	t.Helper()
	s := readmeBlock(t, name)
	for _, r := range replace {
		require.Contains(t, s, r[0], "README.md's %s changed; update this test", name)
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	var b map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(s), &b))
	l := dig(t, b, "static_resources", "listeners", 0, "address", "socket_address").(map[string]any)
	l["address"], l["port_value"] = "127.0.0.1", listen
	b["admin"] = map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": admin}}}
	for _, c := range dig(t, b, "static_resources", "clusters").([]any) {
		c := c.(map[string]any)
		addr, ok := hosts[c["name"].(string)]
		require.True(t, ok, "no host for cluster %v of README.md's %s", c["name"], name)
		host, p, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		port, err := strconv.Atoi(p)
		require.NoError(t, err)
		c["type"] = "STATIC"
		for _, ep := range dig(t, c, "load_assignment", "endpoints").([]any) {
			for _, lb := range ep.(map[string]any)["lb_endpoints"].([]any) {
				sa := dig(t, lb, "endpoint", "address", "socket_address").(map[string]any)
				sa["address"], sa["port_value"] = host, port
			}
		}
	}
	return b
}

// clusterNamed is the bootstrap's cluster name.
func clusterNamed(t *testing.T, b map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range dig(t, b, "static_resources", "clusters").([]any) {
		if c := c.(map[string]any); c["name"] == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// upstreamConfig is the filter_config of the cluster's ai_upstream (the
// first filter of its upstream chain).
func upstreamConfig(t *testing.T, c map[string]any) map[string]any {
	t.Helper()
	f := dig(t, c, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "http_filters", 0).(map[string]any)
	require.Equal(t, "ai_upstream", f["name"])
	return dig(t, f, "typed_config", "filter_config", "value").(map[string]any)
}

func marshalBootstrap(t *testing.T, b map[string]any) []byte {
	t.Helper()
	out, err := yaml.Marshal(b)
	require.NoError(t, err)
	return out
}

// googleConfig is README.md's Google bootstrap: the Gemini API on gemini
// with its key file at geminiKey, Vertex AI on vertex, each string of
// replace replaced first (Vertex AI's token file, a backend).
func googleConfig(t *testing.T, listen, admin int, gemini, vertex, geminiKey string, replace [2]string) []byte {
	return marshalBootstrap(t, providerBootstrap(t, "google-bootstrap", listen, admin, map[string]string{"gemini": gemini, "vertex": vertex},
		[][2]string{replace, {"/etc/secrets/gemini/api-key", geminiKey}}))
}

// vertexTokenFile is the bootstrap's replacement of Vertex AI's token file.
func vertexTokenFile(path string) [2]string {
	return [2]string{"/var/run/secrets/vertex/access-token", path}
}

// vertexServiceAccount replaces Vertex AI's token file by a service
// account key file the library mints tokens from.
func vertexServiceAccount(path string) [2]string {
	return [2]string{"apiKeyFile: /var/run/secrets/vertex/access-token", "serviceAccountKeyFile: " + path}
}

// openAICompatibleGemini replaces the Gemini API backend by Gemini's
// OpenAI-compatible endpoint (TestUpstreamOpenAICompatible's backend),
// keyed by googleConfig's geminiKey.
func openAICompatibleGemini() [2]string {
	return [2]string{"backends: [{name: gemini, schema: gemini, apiKeyFile: /etc/secrets/gemini/api-key}]",
		"backends: [{name: gemini, schema: openai, pathPrefix: /v1beta/openai, model: gemini-2.5-flash-001, apiKeyFile: /etc/secrets/gemini/api-key}]"}
}

// bedrockConfig is README.md's Bedrock bootstrap on addr with the shared
// credentials file at creds.
func bedrockConfig(t *testing.T, listen, admin int, addr, creds string) []byte {
	return marshalBootstrap(t, providerBootstrap(t, "bedrock-bootstrap", listen, admin, map[string]string{"bedrock": addr},
		[][2]string{{"/etc/secrets/aws/credentials", creds}}))
}

// azureConfig is README.md's one-provider bootstrap (Bedrock's) with its
// cluster named azure and its backend an Azure OpenAI one (the
// TestUpstreamAzureOpenAI backend) keyed by key.
func azureConfig(t *testing.T, listen, admin int, addr, key string) []byte {
	b := providerBootstrap(t, "bedrock-bootstrap", listen, admin, map[string]string{"bedrock": addr}, nil)
	c := clusterNamed(t, b, "bedrock")
	c["name"] = "azure"
	dig(t, c, "load_assignment").(map[string]any)["cluster_name"] = "azure"
	dig(t, c, "transport_socket", "typed_config").(map[string]any)["sni"] = "my-resource.openai.azure.com"
	dig(t, b, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config",
		"virtual_hosts", 0, "routes", 0, "route").(map[string]any)["cluster"] = "azure"
	upstreamConfig(t, c)["backends"] = []any{map[string]any{"name": "azure", "schema": "azure_openai", "apiVersion": "2024-10-21", "apiKeyFile": key}}
	return marshalBootstrap(t, b)
}

// fallbackConfig is README.md's provider bootstrap (providersConfig) with
// the models cluster's priority-1 backend replaced by backend, its host on
// provider and its TLS name sni: a pool falls back to that provider as to
// Anthropic.
func fallbackConfig(t *testing.T, listen, admin int, pool, provider string, backend map[string]any, sni string) []byte {
	var b map[string]any
	require.NoError(t, yaml.Unmarshal(providersConfig(t, listen, admin, pool, provider, keyFile(t)), &b))
	models := clusterNamed(t, b, "models")
	backends := upstreamConfig(t, models)["backends"].([]any)
	require.Equal(t, "anthropic", backends[1].(map[string]any)["name"], "README.md's provider bootstrap changed; update this test")
	backends[1] = backend
	meta := dig(t, models, "load_assignment", "endpoints", 1, "lb_endpoints", 0, "metadata", "filter_metadata", "aigateway.envoy.io").(map[string]any)
	meta["per_route_rule_backend_name"] = backend["name"]
	dig(t, models, "transport_socket_matches", 0, "transport_socket", "typed_config").(map[string]any)["sni"] = sni
	return marshalBootstrap(t, b)
}

// requireNoClientKey checks that nothing of the client's key reached a
// provider.
func requireNoClientKey(t *testing.T, r fakeprovider.Recorded) {
	t.Helper()
	fakeprovider.RequireNotSent(t, r, e2eClientKey)
}

// requireProviderTokens waits until Envoy's stats show input tokens tagged
// with provider (histograms reach /stats/prometheus at Envoy's flush).
func requireProviderTokens(t *testing.T, e *envoy, provider string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n, _ := stats(t, e).HistogramCount("gen_ai.client.token.usage", "gen_ai.provider.name", provider, "gen_ai.token.type", "input"); n > 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "no gen_ai.client.token.usage tagged gen_ai.provider.name=%s", provider)
		time.Sleep(200 * time.Millisecond)
	}
}

// streamChat streams params through Envoy and returns what openai-go
// accumulated.
func streamChat(t *testing.T, client openai.Client, params openai.ChatCompletionNewParams, opts ...option.RequestOption) openai.ChatCompletionAccumulator {
	t.Helper()
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(context.Background(), params, opts...)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		require.True(t, acc.AddChunk(stream.Current()))
	}
	require.NoError(t, stream.Err())
	return acc
}

// requireAPIError checks that err is an OpenAI-shaped error of status and
// returns it.
func requireAPIError(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, status, apiErr.StatusCode, apiErr.RawJSON())
	return apiErr
}

func storyParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, MaxTokens: openai.Int(64),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("A story?")}}
}

// Mirrors TestUpstreamGemini: the Gemini API (key in x-goog-api-key) and
// Vertex AI (bearer token from its file) behind README.md's Google
// bootstrap, plain and streamed, Google's errors in OpenAI's shape, and
// the GenAI stats tagged with the provider that served.
func TestEnvoyGeminiAndVertexAI(t *testing.T) {
	needEnvoy(t)
	var asked atomic.Pointer[fakeprovider.GeminiRequest]
	story := func(w http.ResponseWriter, stream bool, req *fakeprovider.GeminiRequest) {
		asked.Store(req)
		fakeprovider.WriteGeminiResponses(t, w, stream, fakeprovider.GeminiStory()...)
	}
	gemini := fakeprovider.NewTLS(t, fakeprovider.Gemini(geminiPath, func(h http.Header) bool {
		return h.Get("x-goog-api-key") == e2eGoogleKey && h.Get("authorization") == ""
	}, story))
	vertex := fakeprovider.NewTLS(t, fakeprovider.Gemini(vertexPath, func(h http.Header) bool {
		return h.Get("authorization") == "Bearer "+e2eVertexToken && h.Get("x-goog-api-key") == ""
	}, story))
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, googleConfig(t, listen, admin, gemini.Addr, vertex.Addr,
		fakeprovider.KeyFile(t, e2eGoogleKey), vertexTokenFile(fakeprovider.KeyFile(t, e2eVertexToken))))
	client := openAIClient(e)

	for _, tc := range []struct {
		name, model, provider string
		fake                  *fakeprovider.Server
	}{
		{"gemini API", "gemini-2.5-flash", "gcp.gemini", gemini},
		{"vertex AI", "gemini-2.5-pro", "gcp.vertex_ai", vertex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Chat.Completions.New(context.Background(), storyParams(tc.model))
			require.NoError(t, err)
			got := tc.fake.Requests()
			require.Len(t, got, 1)
			requireNoClientKey(t, got[0])
			require.Equal(t, "Be brief.", asked.Load().SystemInstruction.Parts[0].Text)
			require.Equal(t, int32(64), asked.Load().GenerationConfig.MaxOutputTokens)
			require.Equal(t, " a time", c.Choices[0].Message.Content)
			require.Equal(t, "stop", c.Choices[0].FinishReason)
			require.Equal(t, tc.model, c.Model)
			require.EqualValues(t, 40, c.Usage.PromptTokens)
			require.EqualValues(t, 15, c.Usage.CompletionTokens, "thoughts count as completion tokens")

			acc := streamChat(t, client, storyParams(tc.model))
			require.Len(t, tc.fake.Requests(), 2)
			require.Equal(t, "Once upon a time", acc.Choices[0].Message.Content)
			require.Equal(t, "stop", acc.Choices[0].FinishReason)
			require.EqualValues(t, 40, acc.Usage.PromptTokens)
			require.EqualValues(t, 30, acc.Usage.PromptTokensDetails.CachedTokens)
			require.EqualValues(t, 15, acc.Usage.CompletionTokens)

			// Google's errors reach an OpenAI client in OpenAI's shape.
			_, err = client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: tc.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.ToolMessage("y", "x")}})
			require.Equal(t, "messages[0].tool_call_id", requireAPIError(t, err, 400).Param)

			requireProviderTokens(t, e, tc.provider)
		})
	}
}

// Mirrors TestUpstreamVertexServiceAccount: Vertex AI with a service
// account key instead of a token file; the library inside Envoy mints the
// token off the request path (a retriable 503 credentials_unavailable
// until it has one) and every request carries it.
func TestEnvoyVertexAIServiceAccount(t *testing.T) {
	needEnvoy(t)
	tokens := googletokentest.NewTokenServer(t)
	sa := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(sa, googletokentest.ServiceAccountKey(t, tokens.URL), 0o600))
	vertex := fakeprovider.NewTLS(t, fakeprovider.Gemini(vertexPath, func(h http.Header) bool { return h.Get("authorization") == "Bearer token-1" },
		func(w http.ResponseWriter, stream bool, _ *fakeprovider.GeminiRequest) {
			fakeprovider.WriteGeminiResponses(t, w, stream, fakeprovider.GeminiStory()...)
		}))
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // the Gemini API cluster is not used
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, googleConfig(t, listen, admin, closed, vertex.Addr,
		fakeprovider.KeyFile(t, e2eGoogleKey), vertexServiceAccount(sa)))
	body := `{"model":"gemini-2.5-pro","messages":[{"role":"user","content":"A story?"}]}`
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, b := chat(t, e, body, nil)
		if resp.StatusCode != 503 {
			require.Equal(t, 200, resp.StatusCode, string(b))
			break
		}
		require.Contains(t, string(b), "credentials_unavailable")
		require.True(t, time.Now().Before(deadline), "no token after 20s")
		time.Sleep(100 * time.Millisecond)
	}
	resp, b := chat(t, e, body, nil)
	require.Equal(t, 200, resp.StatusCode, string(b))
	require.EqualValues(t, 1, tokens.Grants.Load(), "one token, minted once, for every request")
	require.Len(t, vertex.Requests(), 2)
}

// Mirrors TestUpstreamOpenAICompatible: Gemini's OpenAI-compatible endpoint
// in place of the Google bootstrap's Gemini API backend: the backend's path
// prefix, model and bearer key; the client reads back its own model name.
func TestEnvoyOpenAICompatibleBackend(t *testing.T) {
	needEnvoy(t)
	fake := fakeprovider.NewTLS(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if r.Header.Get("authorization") != "Bearer "+e2eOpenAIKey || r.Path != "/v1beta/openai/chat/completions" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"message":"bad key or path","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // the Vertex AI cluster is not used
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, googleConfig(t, listen, admin, fake.Addr, closed,
		fakeprovider.KeyFile(t, e2eOpenAIKey), openAICompatibleGemini()))
	client := openAIClient(e)
	c, err := client.Chat.Completions.New(context.Background(), storyParams("gemini-2.5-flash"))
	require.NoError(t, err)
	got := fake.Requests()
	require.Len(t, got, 1)
	requireNoClientKey(t, got[0])
	require.Empty(t, got[0].Header.Get("x-api-key"))
	require.Equal(t, "gemini-2.5-flash-001", fakeprovider.JSONString(got[0].Body, "model"), "the backend's model name")
	require.Equal(t, "gemini-2.5-flash", c.Model, "the client's model name comes back")
	require.Equal(t, fakeprovider.OpenAIContent, c.Choices[0].Message.Content)
	require.EqualValues(t, 11, c.Usage.PromptTokens)
	require.EqualValues(t, 5, c.Usage.CompletionTokens)
	requireProviderTokens(t, e, "openai")
}

// Mirrors TestUpstreamAzureOpenAI: the deployment path with its
// api-version and the api-key header.
func TestEnvoyAzureOpenAIBackend(t *testing.T) {
	needEnvoy(t)
	const deployment = "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
	fake := fakeprovider.NewTLS(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if r.Header.Get("api-key") != e2eOpenAIKey || r.Path != deployment {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, azureConfig(t, listen, admin, fake.Addr, fakeprovider.KeyFile(t, e2eOpenAIKey)))
	client := openAIClient(e)
	c, err := client.Chat.Completions.New(context.Background(), storyParams("gpt-4o-mini"))
	require.NoError(t, err)
	got := fake.Requests()
	require.Len(t, got, 1)
	require.Equal(t, deployment, got[0].Path)
	requireNoClientKey(t, got[0])
	require.Empty(t, got[0].Header.Get("authorization"))
	require.Equal(t, fakeprovider.OpenAIContent, c.Choices[0].Message.Content)
	require.EqualValues(t, 16, c.Usage.TotalTokens)
	requireProviderTokens(t, e, "azure.openai")
}

// Mirrors TestUpstreamBedrock: README.md's Bedrock bootstrap; the fake
// checks the SigV4 signature of what Envoy sent with the AWS SDK's signer
// (so nothing Envoy added broke it), plain and streamed (AWS's binary
// event stream, translated to SSE).
func TestEnvoyBedrockBackend(t *testing.T) {
	needEnvoy(t)
	var asked atomic.Pointer[fakeprovider.ConverseRequest]
	fake := fakeprovider.NewTLS(t, fakeprovider.Bedrock(bedrockModel, bedrockRegion, func(w http.ResponseWriter, stream bool, req *fakeprovider.ConverseRequest) {
		asked.Store(req)
		if stream {
			fakeprovider.WriteConverseStream(t, w, fakeprovider.ConverseEvents...)
			return
		}
		fakeprovider.WriteConverseAnswer(w)
	}))
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, bedrockConfig(t, listen, admin, fake.Addr, fakeprovider.BedrockCredentialsFile(t)))
	client := openAIClient(e)

	c, err := client.Chat.Completions.New(context.Background(), storyParams("claude-haiku"))
	require.NoError(t, err)
	got := fake.Requests()
	require.Len(t, got, 1)
	requireNoClientKey(t, got[0])
	require.Equal(t, "bedrock-runtime.us-east-1.amazonaws.com", got[0].Host, "the signed host is the one sent")
	require.Equal(t, fakeprovider.BedrockCreds.SessionToken, got[0].Header.Get("x-amz-security-token"))
	require.Equal(t, "Be brief.", asked.Load().System[0].Text)
	require.Equal(t, 64, asked.Load().InferenceConfig.MaxTokens)
	require.Equal(t, "The lighthouse keeper waved.", c.Choices[0].Message.Content)
	require.Equal(t, "claude-haiku", c.Model)
	require.EqualValues(t, 26, c.Usage.PromptTokens, "input + cache reads + cache writes")
	require.EqualValues(t, 7, c.Usage.CompletionTokens)

	acc := streamChat(t, client, storyParams("claude-haiku"))
	require.Len(t, fake.Requests(), 2)
	require.Equal(t, "Once upon a time", acc.Choices[0].Message.Content)
	require.EqualValues(t, 25, acc.Usage.PromptTokens)
	require.EqualValues(t, 12, acc.Usage.CompletionTokens)
	requireProviderTokens(t, e, "aws.bedrock")
}

// The backends a pool falls back to in TestEnvoyFallsBackFromPoolToProvider.
func geminiFallback(key string) map[string]any {
	return map[string]any{"name": "google", "schema": "gemini", "model": "gemini-2.5-flash", "apiKeyFile": key}
}

func bedrockFallback(creds string) map[string]any {
	return map[string]any{"name": "bedrock", "schema": "aws_bedrock", "region": bedrockRegion, "model": bedrockModel,
		"credentialsFile": creds, "profile": "bedrock"}
}

// Mirrors TestUpstreamFallbackToGemini and TestUpstreamFallbackToBedrock
// (their first half): README.md's provider bootstrap with Gemini or Bedrock
// at priority 1 instead of Anthropic; a pool answering 503 is retried on
// the provider, translated (and for Bedrock signed) on the retry, and the
// client reads the provider's answer under its own model name.
func TestEnvoyFallsBackFromPoolToProvider(t *testing.T) {
	needEnvoy(t)
	for _, tc := range []struct {
		name    string
		fake    func(t *testing.T) *fakeprovider.Server
		backend func(t *testing.T) map[string]any
		sni     string
		content string
		usage   int64 // prompt tokens
	}{
		{"gemini", func(t *testing.T) *fakeprovider.Server {
			return fakeprovider.NewTLS(t, fakeprovider.Gemini(geminiPath, func(h http.Header) bool { return h.Get("x-goog-api-key") == e2eGoogleKey },
				func(w http.ResponseWriter, stream bool, _ *fakeprovider.GeminiRequest) {
					fakeprovider.WriteGeminiResponses(t, w, stream, fakeprovider.GeminiStory()...)
				}))
		}, func(t *testing.T) map[string]any { return geminiFallback(fakeprovider.KeyFile(t, e2eGoogleKey)) },
			"generativelanguage.googleapis.com", " a time", 40},
		{"bedrock", func(t *testing.T) *fakeprovider.Server {
			return fakeprovider.NewTLS(t, fakeprovider.Bedrock(bedrockModel, bedrockRegion, func(w http.ResponseWriter, _ bool, _ *fakeprovider.ConverseRequest) {
				fakeprovider.WriteConverseAnswer(w)
			}))
		}, func(t *testing.T) map[string]any { return bedrockFallback(fakeprovider.BedrockCredentialsFile(t)) },
			"bedrock-runtime.us-east-1.amazonaws.com", "The lighthouse keeper waved.", 26},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := startSims(t, 1)[0]
			fake := tc.fake(t)
			listen, admin := freePort(t), freePort(t)
			e := startEnvoyWith(t, listen, admin, fallbackConfig(t, listen, admin, pool, fake.Addr, tc.backend(t), tc.sni))
			client := openAIClient(e)

			c, err := client.Chat.Completions.New(context.Background(), fallbackChat)
			require.NoError(t, err, "the pool serves")
			require.Equal(t, "sim-model", c.Model)
			require.Empty(t, fake.Requests())

			c, err = client.Chat.Completions.New(context.Background(), fallbackChat, option.WithHeader("X-Return-Error", "503"))
			require.NoError(t, err)
			got := fake.Requests()
			require.Len(t, got, 1, "the retry reached the provider")
			requireNoClientKey(t, got[0])
			require.Equal(t, tc.content, c.Choices[0].Message.Content)
			require.Equal(t, "sim-model", c.Model, "the client's model name")
			require.EqualValues(t, tc.usage, c.Usage.PromptTokens, "the serving provider's usage")
		})
	}
}

// Mirrors TestUpstreamErrorInsideA200: an error a provider sends under a
// 200 reaches the client with the error's status in OpenAI's shape (an
// Anthropic error object, a body that is not a message, a prompt Gemini
// blocked), and a good answer keeps its 200 and usage.
func TestEnvoyErrorInsideA200(t *testing.T) {
	needEnvoy(t)
	var claudeBody atomic.Value
	claude := fakeprovider.NewTLS(t, fakeprovider.Anthropic(t, e2eAnthropicKey, func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, claudeBody.Load().(string)) // always under a 200
	}))
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // the pool is not used: claude-sonnet-4-5 has its own route
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, providersConfig(t, listen, admin, closed, claude.Addr, keyFile(t)))
	client := openAIClient(e)
	claudeChat := openai.ChatCompletionNewParams{Model: "claude-sonnet-4-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"an Anthropic error object", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 500, "overloaded"},
		{"a body that is not a message", `<html>maintenance</html>`, 502, ""},
	} {
		t.Run(tc.name+" goes out with its status", func(t *testing.T) {
			claudeBody.Store(tc.body)
			_, err := client.Chat.Completions.New(context.Background(), claudeChat)
			apiErr := requireAPIError(t, err, tc.status)
			require.Equal(t, tc.code, apiErr.Code)
		})
	}
	t.Run("a good answer keeps its 200 and its usage", func(t *testing.T) {
		claudeBody.Store(fakeprovider.AnthropicMessage)
		c, err := client.Chat.Completions.New(context.Background(), claudeChat)
		require.NoError(t, err)
		require.EqualValues(t, 26, c.Usage.PromptTokens)
	})

	t.Run("a prompt Gemini blocked under a 200 is a 400", func(t *testing.T) {
		gemini := fakeprovider.NewTLS(t, fakeprovider.Gemini(geminiPath, func(h http.Header) bool { return h.Get("x-goog-api-key") == e2eGoogleKey },
			func(w http.ResponseWriter, _ bool, _ *fakeprovider.GeminiRequest) {
				w.Header().Set("content-type", "application/json")
				fmt.Fprint(w, fakeprovider.GeminiBlocked)
			}))
		listen, admin := freePort(t), freePort(t)
		e := startEnvoyWith(t, listen, admin, googleConfig(t, listen, admin, gemini.Addr, closed,
			fakeprovider.KeyFile(t, e2eGoogleKey), vertexTokenFile(fakeprovider.KeyFile(t, e2eVertexToken))))
		client := openAIClient(e)
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		require.Equal(t, "content_filter", requireAPIError(t, err, 400).Code)
		require.Len(t, gemini.Requests(), 1)
	})
}
