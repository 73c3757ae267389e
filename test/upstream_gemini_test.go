package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/googletoken/googletokentest"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

const googleKey = "AIza-FILE-KEY-google-0123456789"

func TestUpstreamGemini(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		backend      map[string]any
		auth         func(http.Header) bool
	}{
		{"gemini API", "/v1beta/models/gemini-2.5-flash",
			map[string]any{"name": "google", "schema": "gemini"},
			func(h http.Header) bool { return h.Get("x-goog-api-key") == googleKey && h.Get("authorization") == "" }},
		{"vertex AI", "/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-flash",
			map[string]any{"name": "google", "schema": "vertex_ai", "project": "proj-1", "location": "us-central1"},
			func(h http.Header) bool {
				return h.Get("authorization") == "Bearer "+googleKey && h.Get("x-goog-api-key") == ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked *fakeprovider.GeminiRequest
			fake := fakeprovider.New(t, fakeprovider.Gemini(tc.prefix, tc.auth, func(w http.ResponseWriter, stream bool, req *fakeprovider.GeminiRequest) {
				asked = req
				fakeprovider.WriteGeminiResponses(t, w, stream, fakeprovider.GeminiStory()...)
			}))
			tc.backend["apiKeyFile"] = fakeprovider.KeyFile(t, googleKey)
			h := providerGateway(t, map[string]any{"backends": []map[string]any{tc.backend}},
				harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("google")})

			// JSON.
			res, err := h.Send(context.Background(), chatRequest(`{"model":"gemini-2.5-flash","max_tokens":64,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"A story?"}]}`))
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			got := fake.Requests()
			require.Len(t, got, 1)
			requireNoClientKey(t, got[0])
			require.Equal(t, "Be brief.", asked.SystemInstruction.Parts[0].Text)
			require.Equal(t, int32(64), asked.GenerationConfig.MaxOutputTokens)
			var cc openai.ChatCompletion
			require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
			require.Equal(t, " a time", cc.Choices[0].Message.Content)
			require.Equal(t, "stop", cc.Choices[0].FinishReason)
			require.EqualValues(t, 40, cc.Usage.PromptTokens)
			require.EqualValues(t, 15, cc.Usage.CompletionTokens, "thoughts count as completion tokens")
			costs := costMetadata(t, res)
			require.EqualValues(t, 40, costs["llm_input_token"])
			require.EqualValues(t, 15, costs["llm_output_token"])
			require.EqualValues(t, 55, costs["llm_total_token"])

			// Streamed, the client asking for usage.
			res, err = h.Send(context.Background(), chatRequest(`{"model":"gemini-2.5-flash","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"A story?"}]}`))
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Equal(t, "text/event-stream", res.Client.Headers.Get("content-type"))
			events := strings.Split(strings.TrimSuffix(string(res.Client.Body), "\n\n"), "\n\n")
			require.Equal(t, "data: [DONE]", events[len(events)-1])
			var text strings.Builder
			finish, usage := "", 0
			for _, ev := range events[:len(events)-1] {
				var c openai.ChatCompletionChunk
				require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c), ev)
				if len(c.Choices) == 0 {
					usage++
					require.EqualValues(t, 40, c.Usage.PromptTokens)
					require.EqualValues(t, 30, c.Usage.PromptTokensDetails.CachedTokens)
					continue
				}
				text.WriteString(c.Choices[0].Delta.Content)
				if c.Choices[0].FinishReason != "" {
					finish = c.Choices[0].FinishReason
				}
			}
			require.Equal(t, "Once upon a time", text.String())
			require.Equal(t, "stop", finish)
			require.Equal(t, 1, usage)
			require.EqualValues(t, 15, costMetadata(t, res)["llm_output_token"])

			// Google's errors reach an OpenAI client in OpenAI's shape.
			res, err = h.Send(context.Background(), chatRequest(`{"model":"gemini-2.5-flash","messages":[{"role":"tool","tool_call_id":"x","content":"y"}]}`))
			require.NoError(t, err)
			require.Equal(t, 400, res.Client.Status)
			require.Equal(t, "messages[0].tool_call_id", jsonPath(t, res.Client.Body, "error", "param"))
		})
	}
}

func jsonPath(t *testing.T, body []byte, keys ...string) any {
	var v any
	require.NoError(t, json.Unmarshal(body, &v), string(body))
	for _, k := range keys {
		m, ok := v.(map[string]any)
		require.True(t, ok, string(body))
		v = m[k]
	}
	return v
}

// A pool that answers 503 falls back to Gemini, translated on the retry;
// Gemini's quota error (429) falls back to the pool with the original
// OpenAI request.
func TestUpstreamFallbackToGemini(t *testing.T) {
	var poolStatus, googleStatus atomic.Int32
	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if s := int(poolStatus.Load()); s != 200 {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(s)
			fmt.Fprint(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	const prefix = "/v1beta/models/gemini-2.5-flash"
	google := fakeprovider.New(t, fakeprovider.Gemini(prefix, func(h http.Header) bool { return h.Get("x-goog-api-key") == googleKey },
		func(w http.ResponseWriter, stream bool, _ *fakeprovider.GeminiRequest) {
			if s := int(googleStatus.Load()); s != 200 {
				fakeprovider.WriteGoogleError(w, s, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
				return
			}
			fakeprovider.WriteGeminiResponses(t, w, stream, fakeprovider.GeminiStory()...)
		}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "google", "schema": "gemini", "model": "gemini-2.5-flash", "apiKeyFile": fakeprovider.KeyFile(t, googleKey)}}},
		harness.UpstreamHost{Address: pool.Addr, Metadata: hostBackend("pool")},
		harness.UpstreamHost{Address: google.Addr, Metadata: hostBackend("google")})
	send := func(order ...string) *harness.Result {
		req := chatRequest(`{"model":"llama-3-8b","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}`)
		req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", strings.Join(order, ",")})
		req.RetriableStatus = []int{429, 503}
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		return res
	}

	poolStatus.Store(503)
	googleStatus.Store(200)
	res := send(pool.Addr, google.Addr)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Len(t, res.Attempts, 2)
	require.Equal(t, "/v1/chat/completions", res.AttemptRequests[0].Headers.Get(":path"))
	require.Equal(t, prefix+":generateContent", res.AttemptRequests[1].Headers.Get(":path"))
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, " a time", cc.Choices[0].Message.Content)
	require.Equal(t, "llama-3-8b", cc.Model, "the client's model name")
	require.EqualValues(t, 55, costMetadata(t, res)["llm_total_token"], "the serving provider's usage")

	poolStatus.Store(200)
	googleStatus.Store(429)
	res = send(google.Addr, pool.Addr)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Len(t, res.Attempts, 2)
	second := res.AttemptRequests[1].Headers
	require.Equal(t, "/v1/chat/completions", second.Get(":path"))
	require.Empty(t, second.Get("x-goog-api-key"), "attempt 1's credential is gone from the shared map")
	got := pool.Requests()
	require.Equal(t, "llama-3-8b", fakeprovider.JSONString(got[len(got)-1].Body, "model"), "the OpenAI body, not attempt 1's Gemini one")
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
}

// A vertex_ai backend with a service account key mints its own tokens off
// the request path: requests before the first token get a retriable 503,
// then the token reaches Vertex AI as a bearer token.
func TestUpstreamVertexServiceAccount(t *testing.T) {
	tokens := googletokentest.NewTokenServer(t)
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(keyFile, googletokentest.ServiceAccountKey(t, tokens.URL), 0o600))
	const prefix = "/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-flash"
	fake := fakeprovider.New(t, fakeprovider.Gemini(prefix, func(h http.Header) bool { return h.Get("authorization") == "Bearer token-1" },
		func(w http.ResponseWriter, stream bool, _ *fakeprovider.GeminiRequest) {
			fakeprovider.WriteGeminiResponses(t, w, stream, fakeprovider.GeminiStory()...)
		}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{{"name": "vertex", "schema": "vertex_ai",
		"project": "proj-1", "location": "us-central1", "serviceAccountKeyFile": keyFile}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("vertex")})
	var res *harness.Result
	require.Eventually(t, func() bool {
		var err error
		res, err = h.Send(context.Background(), chatRequest(`{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"A story?"}]}`))
		require.NoError(t, err)
		if res.Client.Status == 503 {
			require.Contains(t, string(res.Client.Body), "credentials_unavailable")
			return false
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.EqualValues(t, 1, tokens.Grants.Load(), "one token, minted once, for every request")
	require.NotEmpty(t, fake.Requests())

	// A key that is not a service account's refuses the config, naming the field.
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"type":"authorized_user"}`), 0o600))
	cfg, err := json.Marshal(map[string]any{"backends": []map[string]any{{"name": "vertex", "schema": "vertex_ai",
		"project": "proj-1", "location": "us-central1", "serviceAccountKeyFile": bad}}})
	require.NoError(t, err)
	_, err = h.ConfigureCluster(harness.Cluster{Name: "other", Hosts: []harness.UpstreamHost{{Address: fake.Addr}},
		Filters: harness.Chain{{Name: "ai_upstream", Config: cfg}}})
	require.ErrorContains(t, err, "backends[0].serviceAccountKeyFile")
}

// A client's model name cannot steer a provider's path: it is one
// percent-encoded segment for Gemini and Bedrock, so "../", ":method",
// "?key=" and "#" stay inside it.
func TestUpstreamModelCannotChangeThePath(t *testing.T) {
	const hostile = `../../x:embedContent?key=stolen#frag`
	for _, tc := range []struct {
		name    string
		backend map[string]any
		want    string
	}{
		{"gemini", map[string]any{"name": "p", "schema": "gemini", "apiKeyFile": fakeprovider.KeyFile(t, googleKey)},
			"/v1beta/models/..%2F..%2Fx%3AembedContent%3Fkey%3Dstolen%23frag:generateContent"},
		{"bedrock", map[string]any{"name": "p", "schema": "aws_bedrock", "region": "us-east-1", "credentialsFile": fakeprovider.BedrockCredentialsFile(t), "profile": "bedrock"},
			"/model/..%2F..%2Fx%3AembedContent%3Fkey%3Dstolen%23frag/converse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakeprovider.New(t, func(w http.ResponseWriter, _ *fakeprovider.Recorded) {
				w.Header().Set("content-type", "application/json")
				w.WriteHeader(404)
				fmt.Fprint(w, `{"message":"no such model"}`)
			})
			h := providerGateway(t, map[string]any{"backends": []map[string]any{tc.backend}},
				harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("p")})
			body, _ := json.Marshal(map[string]any{"model": hostile, "messages": []map[string]string{{"role": "user", "content": "hi"}}})
			res, err := h.Send(context.Background(), chatRequest(string(body)))
			require.NoError(t, err)
			require.Equal(t, 404, res.Client.Status, string(res.Client.Body))
			got := fake.Requests()
			require.Len(t, got, 1)
			require.Equal(t, tc.want, got[0].Path)
		})
	}
}
