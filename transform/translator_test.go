package transform

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

const testKey = "sk-test-SECRET-0123456789"

func mustBackend(t testing.TB, config, key string) *Backend {
	t.Helper()
	b, err := ParseBackend([]byte(config), key)
	require.NoError(t, err)
	return b
}

// applyHeaders applies edits to a header map as Envoy would.
func applyHeaders(h map[string]string, edits []HeaderEdit) {
	for _, e := range edits {
		if e.Remove {
			delete(h, e.Name)
		} else {
			h[e.Name] = e.Value
		}
	}
}

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         BackendConfig
	}{
		{"openai defaults", `{"schema":"openai"}`, BackendConfig{Schema: "openai", PathPrefix: "/v1"}},
		{"openai prefix and model", `{"schema":"openai","pathPrefix":"/v1beta/openai","model":"gemini-2.0"}`,
			BackendConfig{Schema: "openai", PathPrefix: "/v1beta/openai", Model: "gemini-2.0"}},
		{"azure", `{"schema":"azure_openai","apiVersion":"2024-10-21","deployment":"gpt4o-prod"}`,
			BackendConfig{Schema: "azure_openai", PathPrefix: "/openai", APIVersion: "2024-10-21", Deployment: "gpt4o-prod"}},
		{"anthropic defaults", `{"schema":"anthropic"}`,
			BackendConfig{Schema: "anthropic", PathPrefix: "/v1", MaxTokens: 4096, AnthropicVersion: "2023-06-01"}},
		{"anthropic", `{"schema":"anthropic","maxTokens":1024,"model":"claude-sonnet-4-5","anthropicVersion":"2023-06-01"}`,
			BackendConfig{Schema: "anthropic", PathPrefix: "/v1", MaxTokens: 1024, Model: "claude-sonnet-4-5", AnthropicVersion: "2023-06-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustBackend(t, tc.config, testKey)
			require.Equal(t, tc.want, b.BackendConfig)
			require.NotNil(t, b.NewTranslator())
		})
	}
}

func TestParseBackendErrors(t *testing.T) {
	for _, tc := range []struct {
		config, key, want string
	}{
		{``, "", "schema: must be set"},
		{`{"schema":"bedrock"}`, "", `schema: unknown schema "bedrock"`},
		{`{"schema":"openai","modle":"x"}`, "", `unknown field "modle"`},
		{`{"schema":"openai","maxTokens":"many"}`, "", "maxTokens"},
		{`{"schema":"openai","maxTokens":5}`, "", "maxTokens: only for schema anthropic"},
		{`{"schema":"openai","apiVersion":"2024-10-21"}`, "", "apiVersion: only for schema azure_openai"},
		{`{"schema":"anthropic","deployment":"d"}`, "", "deployment: only for schema azure_openai"},
		{`{"schema":"openai","anthropicVersion":"x"}`, "", "anthropicVersion: only for schema anthropic"},
		{`{"schema":"azure_openai"}`, "", "apiVersion: required"},
		{`{"schema":"azure_openai","apiVersion":"2024&x=1"}`, "", "apiVersion: must be a plain version"},
		{`{"schema":"openai","pathPrefix":"v1"}`, "", "pathPrefix: must start with"},
		{`{"schema":"openai","pathPrefix":"/v1/"}`, "", "pathPrefix: must start with"},
		{`{"schema":"openai","pathPrefix":"/v1?x=1"}`, "", "pathPrefix: must start with"},
		{`{"schema":"anthropic","maxTokens":-1}`, "", "maxTokens: must be > 0"},
		{`{"schema":"anthropic","anthropicVersion":"2023\r\nx: y"}`, "", "anthropicVersion: must be printable"},
		{`{"schema":"openai","model":"a\u0000b"}`, "", "model: must be UTF-8 text"},
		{`{"schema":"openai"}`, "sk-SECRET\r\nx-injected: 1", "apiKey: must be printable ASCII"},
		{`{"schema":"openai"}`, " sk-SECRET ", "apiKey: must be printable ASCII"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := ParseBackend([]byte(tc.config), tc.key)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "SECRET", "a secret never goes into an error")
		})
	}
}

func TestOpenAIRequest(t *testing.T) {
	body := []byte(`{"model":"food-review","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	for _, tc := range []struct {
		name, config, key, path string
		wantPath, wantAuth      string
		wantModel               string
	}{
		{"plain", `{"schema":"openai"}`, testKey, "/v1/chat/completions", "/v1/chat/completions", "Bearer " + testKey, "food-review"},
		{"prefix keeps query", `{"schema":"openai","pathPrefix":"/v1beta/openai"}`, "", "/v1/chat/completions?x=1", "/v1beta/openai/chat/completions?x=1", "", "food-review"},
		{"override", `{"schema":"openai","model":"llama-3-8b"}`, testKey, "/v1/chat/completions", "/v1/chat/completions", "Bearer " + testKey, "llama-3-8b"},
		{"unknown endpoint untouched", `{"schema":"openai","model":"llama-3-8b"}`, testKey, "/v1/files", "/v1/files", "Bearer " + testKey, "food-review"},
		{"normal form, query kept", `{"schema":"openai","pathPrefix":"/openai/v1"}`, testKey, "//v1/./chat%2Fcompletions/?a=1#f", "/openai/v1/chat/completions?a=1", "Bearer " + testKey, "food-review"},
		{"non-v1 path with the default prefix", `{"schema":"openai"}`, testKey, "/tokenize", "/tokenize", "Bearer " + testKey, "food-review"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustBackend(t, tc.config, tc.key).NewTranslator()
			// The client's own credentials and a previous attempt's edits
			// (an Anthropic attempt removed accept-encoding) are in the
			// shared header map.
			h := map[string]string{":path": "/anthropic/v1/messages", "authorization": "Bearer client-key",
				"x-api-key": "old", "anthropic-version": "2023-06-01", "content-length": "7"}
			out, err := tr.TranslateRequest(UpstreamRequest{Path: tc.path, AcceptEncoding: "gzip", Body: body})
			require.NoError(t, err)
			applyHeaders(h, out.Headers)
			require.Equal(t, tc.wantPath, h[":path"])
			auth, ok := h["authorization"]
			require.Equal(t, tc.wantAuth != "", ok)
			require.Equal(t, tc.wantAuth, auth)
			require.NotContains(t, h, "x-api-key")
			require.NotContains(t, h, "anthropic-version")
			require.Equal(t, tc.wantModel, gjson.GetBytes(out.Body, "model").Str)
			require.Equal(t, strings.Repeat("x", len(out.Body)), strings.Repeat("x", atoi(t, h["content-length"])))
			if tc.wantModel == "food-review" {
				require.Equal(t, body, out.Body, "body unchanged")
				require.Equal(t, "gzip", h["accept-encoding"], "the original accept-encoding again")
			} else {
				require.NotContains(t, h, "accept-encoding", "an overridden model is restored: the body must come plain")
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int(c-'0')
	}
	return n
}

func TestOpenAIRequestErrors(t *testing.T) {
	tr := mustBackend(t, `{"schema":"openai","model":"x"}`, "").NewTranslator()
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{}`)})
	require.Equal(t, 400, err.(*Error).Status, "an override needs the model")
	_, err = tr.TranslateRequest(UpstreamRequest{Path: "/v1x", Body: []byte(`{}`)})
	require.NoError(t, err, "any path with the default prefix")
	prefixed := mustBackend(t, `{"schema":"openai","pathPrefix":"/openai/v1"}`, "").NewTranslator()
	for _, p := range []string{"/v1x", "/tokenize", "/v1/../admin", "/v1/%2E%2E/admin", "v1/chat/completions"} {
		_, err = prefixed.TranslateRequest(UpstreamRequest{Path: p, Body: []byte(`{}`)})
		require.Equal(t, 404, err.(*Error).Status, p)
	}
	_, err = tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":1}`)})
	require.Equal(t, 400, err.(*Error).Status)
}

// A retry shares the request header map: translating the original request
// again over the edited map gives the same headers, whatever attempt came
// before, even one to another schema.
func TestTranslationsOwnTheirHeaders(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	backends := []*Backend{
		mustBackend(t, `{"schema":"openai","pathPrefix":"/openai/v1"}`, "k1"),
		mustBackend(t, `{"schema":"azure_openai","apiVersion":"2024-10-21"}`, "k2"),
		mustBackend(t, `{"schema":"anthropic","model":"claude-sonnet-4-5"}`, "k3"),
		mustBackend(t, `{"schema":"gemini"}`, "k4"),
		mustBackend(t, `{"schema":"vertex_ai","project":"p","location":"us-east5"}`, "k5"),
		mustBackend(t, `{"schema":"aws_bedrock","region":"us-west-2"}`, "").WithSigner(&fakeSigner{}),
	}
	original := map[string]string{":path": "/v1/chat/completions", "content-length": "58", "authorization": "Bearer client", "accept-encoding": "gzip"}
	req := UpstreamRequest{Path: original[":path"], AcceptEncoding: original["accept-encoding"], Body: body}
	for _, b := range backends {
		first := clone(original)
		out, err := b.NewTranslator().TranslateRequest(req)
		require.NoError(t, err)
		applyHeaders(first, out.Headers)
		for _, before := range backends {
			h := clone(original)
			prev, err := before.NewTranslator().TranslateRequest(req)
			require.NoError(t, err)
			applyHeaders(h, prev.Headers)
			again, err := b.NewTranslator().TranslateRequest(req)
			require.NoError(t, err)
			applyHeaders(h, again.Headers)
			// Only Bedrock's translation sets :authority (its signature
			// covers it); after it, the host the route rewrites to decides.
			if _, ok := first[":authority"]; !ok {
				delete(h, ":authority")
			}
			require.Equal(t, first, h, "%s after %s", b.Schema, before.Schema)
		}
	}
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestAzureRequest(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	for _, tc := range []struct {
		name, config, path, wantPath, wantModel string
	}{
		{"deployment from model", `{"schema":"azure_openai","apiVersion":"2024-10-21"}`, "/v1/chat/completions?api-version=evil",
			"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "gpt-4o"},
		{"configured deployment", `{"schema":"azure_openai","apiVersion":"2024-10-21","deployment":"prod-4o"}`, "/v1/chat/completions",
			"/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", "gpt-4o"},
		{"override names deployment", `{"schema":"azure_openai","apiVersion":"2024-10-21","model":"a/../b?c#d"}`, "/v1/embeddings",
			"/openai/deployments/a%2F..%2Fb%3Fc%23d/embeddings?api-version=2024-10-21", "a/../b?c#d"},
		{"completions with prefix", `{"schema":"azure_openai","apiVersion":"2024-10-21","pathPrefix":"/aoai/openai"}`, "/v1/completions",
			"/aoai/openai/deployments/gpt-4o/completions?api-version=2024-10-21", "gpt-4o"},
		{"responses", `{"schema":"azure_openai","apiVersion":"2025-04-01-preview"}`, "/v1/responses",
			"/openai/responses?api-version=2025-04-01-preview", "gpt-4o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if strings.Contains(tc.path, "embeddings") || strings.Contains(tc.path, "responses") {
				b = []byte(`{"model":"gpt-4o","input":"hi"}`)
			} else if strings.Contains(tc.path, "/completions") && !strings.Contains(tc.path, "chat") {
				b = []byte(`{"model":"gpt-4o","prompt":"hi"}`)
			}
			tr := mustBackend(t, tc.config, testKey).NewTranslator()
			out, err := tr.TranslateRequest(UpstreamRequest{Path: tc.path, Body: b})
			require.NoError(t, err)
			h := map[string]string{"authorization": "Bearer client"}
			applyHeaders(h, out.Headers)
			require.Equal(t, tc.wantPath, h[":path"])
			require.Equal(t, testKey, h["api-key"])
			require.NotContains(t, h, "authorization")
			require.Equal(t, tc.wantModel, gjson.GetBytes(out.Body, "model").Str)
		})
	}
	_, err := mustBackend(t, `{"schema":"azure_openai","apiVersion":"v"}`, "").NewTranslator().
		TranslateRequest(UpstreamRequest{Path: "/v1/models", Body: nil})
	require.Equal(t, 404, err.(*Error).Status)
}

func TestAppendPathSegment(t *testing.T) {
	for in, want := range map[string]string{
		"gpt-4o": "gpt-4o", "a b": "a%20b", "..": "%2E%2E", ".": "%2E", "a.b_c~d": "a.b_c~d",
		"x/y?z#w%": "x%2Fy%3Fz%23w%25", "é": "%C3%A9",
	} {
		require.Equal(t, want, string(appendPathSegment(nil, in)), in)
	}
}

// An overridden model is named again in the response, JSON or streamed,
// and usage is read from the provider's bytes.
func TestOpenAIResponseRestoresModel(t *testing.T) {
	for _, tc := range []struct{ name, ct, body, want string }{
		{"json", "application/json",
			`{"id":"c","model":"llama-3-8b","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
			`{"id":"c","model":"food-review","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`},
		{"sse", "text/event-stream",
			"data: {\"model\":\"llama-3-8b\",\"choices\":[]}\n\ndata: {\"model\":\"llama-3-8b\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n",
			"data: {\"model\":\"food-review\",\"choices\":[]}\n\ndata: {\"model\":\"food-review\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustBackend(t, `{"schema":"openai","model":"llama-3-8b"}`, "").NewTranslator()
			_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions",
				Body: []byte(`{"model":"food-review","messages":[{"role":"user","content":"hi"}]}`)})
			require.NoError(t, err)
			rh, err := tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: tc.ct})
			require.NoError(t, err)
			require.Equal(t, []HeaderEdit{{Name: "content-length", Remove: true}}, rh.Headers)
			var out []byte
			for i := 0; i < len(tc.body); i += 5 {
				out, _ = tr.TranslateResponseBody(out, []byte(tc.body[i:min(i+5, len(tc.body))]), i+5 >= len(tc.body))
			}
			require.Equal(t, tc.want, string(out))
			u, ok := tr.Usage()
			require.True(t, ok)
			require.Equal(t, Usage{InputTokens: 3, OutputTokens: 4, TotalTokens: 7}, u)
		})
	}
}

func TestOpenAIPassThrough(t *testing.T) {
	tr := mustBackend(t, `{"schema":"azure_openai","apiVersion":"2024-10-21"}`, "").NewTranslator()
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions",
		Body: []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)})
	require.NoError(t, err)
	rh, err := tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: "application/json", ContentEncoding: "gzip"})
	require.NoError(t, err)
	require.Empty(t, rh.Headers)
	out, changed := tr.TranslateResponseBody(nil, []byte(`{"x":1}`), true)
	require.False(t, changed)
	require.Equal(t, `{"x":1}`, string(out))
}

func TestOpenAIError(t *testing.T) {
	tr := mustBackend(t, `{"schema":"openai"}`, "").NewTranslator()
	e := tr.TranslateError(401, readFixture(t, "openai/error_401.json"))
	require.Equal(t, 401, e.Status)
	require.Equal(t, "invalid_api_key", e.Code)
	require.Equal(t, "invalid_request_error", e.Type)
	e = tr.TranslateError(502, []byte("<html>bad gateway</html>"))
	require.Equal(t, &Error{Status: 502, Type: "server_error", Message: "upstream returned status 502"}, e)
	e = tr.TranslateError(429, []byte(`{"error":{"message":"slow down"}}`))
	require.Equal(t, &Error{Status: 429, Type: "invalid_request_error", Message: "slow down"}, e)
}

// A translator told no one asks for its usage passes the answer as before
// (the model named back when overridden) and reports no usage; without a
// model to name back it says the body passes as is (BodyPasser).
func TestOpenAISkipUsage(t *testing.T) {
	answer := `{"model":"llama-3-8b","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	for _, tc := range []struct{ name, config, want string }{
		{"as is", `{"schema":"openai"}`, answer},
		{"model overridden", `{"schema":"openai","model":"llama-3-8b"}`, strings.Replace(answer, "llama-3-8b", "food-review", 1)},
		{"azure", `{"schema":"azure_openai","apiVersion":"2024-10-21"}`, answer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, skip := range []bool{false, true} {
				tr := mustBackend(t, tc.config, "").NewTranslator()
				if skip {
					tr.(UsageSkipper).SkipUsage()
				}
				_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions",
					Body: []byte(`{"model":"food-review","messages":[{"role":"user","content":"hi"}]}`)})
				require.NoError(t, err)
				_, err = tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: "application/json"})
				require.NoError(t, err)
				out, changed := tr.TranslateResponseBody(nil, []byte(answer), true)
				require.Equal(t, tc.want, string(out))
				// A translator that says it passes the body changes nothing of it.
				passes := tr.(BodyPasser).PassesBody()
				require.Equal(t, skip && tc.want == answer, passes)
				require.False(t, passes && changed)
				_, has := tr.Usage()
				require.Equal(t, !skip, has, "usage read unless skipped")
			}
		})
	}
}
