package transform

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

func mustParse(t testing.TB, config string) *Config {
	t.Helper()
	c, err := Parse([]byte(config))
	require.NoError(t, err)
	return c
}

func TestRoute(t *testing.T) {
	listed := mustParse(t, `{"models":[{"name":"m"}]}`)
	passing := mustParse(t, `{"passThroughPaths":["/health","/v1/audio/transcriptions","/v1/responses/*"]}`)
	all := mustParse(t, `{"passThroughPaths":["/*"]}`)
	open := mustParse(t, ``)
	tests := []struct {
		name         string
		c            *Config
		method, path string
		want         Endpoint
		status       int
	}{
		{"chat", open, "POST", "/v1/chat/completions", EndpointChatCompletions, 0},
		{"query ignored", open, "POST", "/v1/completions?api-version=2024-02-01", EndpointCompletions, 0},
		{"embeddings", open, "POST", "/v1/embeddings", EndpointEmbeddings, 0},
		{"responses", open, "POST", "/v1/responses#x", EndpointResponses, 0},
		{"escaped letter", open, "POST", "/v1/chat/%63ompletions", EndpointChatCompletions, 0},
		{"escaped slash", open, "POST", "/v1/chat%2Fcompletions", EndpointChatCompletions, 0},
		{"escaped slash, lower case", open, "POST", "/v1/chat%2fcompletions?x", EndpointChatCompletions, 0},
		{"double slash", open, "POST", "//v1//chat/completions", EndpointChatCompletions, 0},
		{"trailing slash", open, "POST", "/v1/chat/completions/", EndpointChatCompletions, 0},
		{"dot segments", open, "POST", "/v1/x/../chat/./completions", EndpointChatCompletions, 0},
		{"vLLM invocations", open, "POST", "/invocations", EndpointInvocations, 0},
		{"vLLM rerank", open, "POST", "/v2/rerank", EndpointRerank, 0},
		{"vLLM anthropic messages", open, "POST", "/v1/messages", EndpointMessages, 0},
		{"wrong method", open, "GET", "/v1/chat/completions", EndpointChatCompletions, 405},
		{"wrong method, escaped", open, "GET", "/v1/chat%2Fcompletions", EndpointChatCompletions, 405},
		{"unknown rejected", open, "GET", "/healthz", EndpointNone, 404},
		{"SGLang generate rejected", open, "POST", "/generate", EndpointNone, 404},
		{"double escape is not decoded twice", open, "POST", "/v1/chat%252Fcompletions", EndpointNone, 404},
		{"listed passes", passing, "GET", "/health", EndpointNone, 0},
		{"listed passes, other spelling", passing, "GET", "/%68ealth/?probe=1", EndpointNone, 0},
		{"listed multipart path passes", passing, "POST", "/v1/audio/transcriptions", EndpointNone, 0},
		{"prefix passes", passing, "POST", "/v1/responses/resp_1/cancel", EndpointNone, 0},
		{"prefix does not take its own root", passing, "GET", "/v1/responses-x", EndpointNone, 404},
		{"a checked endpoint under a prefix stays checked", passing, "POST", "/v1/responses", EndpointResponses, 0},
		{"unlisted still rejected", passing, "GET", "/metrics", EndpointNone, 404},
		{"everything passes with /*", all, "GET", "/anything/at/all", EndpointNone, 0},
		{"checked endpoints stay checked with /*", all, "POST", "/v1/chat/%63ompletions", EndpointChatCompletions, 0},
		{"models without a list pass", open, "GET", "/v1/models", EndpointNone, 0},
		{"models listed", listed, "GET", "/v1/models/", EndpointModels, 0},
		{"models listed, wrong method", listed, "DELETE", "/v1/models", EndpointModels, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := tt.c.Route(tt.method, tt.path)
			require.Equal(t, tt.want, ep)
			if tt.status == 0 {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.status, e.Status)
			require.True(t, json.Valid(e.Body()))
		})
	}
	_, err := open.Route("POST", "/v2/x?y=1")
	require.JSONEq(t, `{"error":{"message":"Invalid URL (POST /v2/x)","type":"invalid_request_error","param":null,"code":"unknown_url"}}`,
		string(err.(*Error).Body()))
	_, err = open.Route("POST", "/"+strings.Repeat("%ff", 100))
	require.LessOrEqual(t, len(err.(*Error).Message), 200, "the reply echoes a bounded part of the path")
	require.True(t, json.Valid(err.(*Error).Body()))
}

// edited applies to a request body, decoded, the changes Decide should make.
func edited(t *testing.T, body []byte, model string, usage bool) map[string]any {
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["model"] = model
	if usage {
		so, _ := m["stream_options"].(map[string]any)
		if so == nil {
			so = map[string]any{}
		}
		so["include_usage"] = true
		m["stream_options"] = so
	}
	return m
}

func TestDecideEdits(t *testing.T) {
	c := mustParse(t, `{"rewrites":[{"model":"alias","targets":[{"model":"real-model-v2"}]}]}`)
	const msgs = `"messages": [ {"role":"user", "content":"héllo"} ]`
	tests := []struct {
		name      string
		body      string
		target    string
		askUsage  bool
		unchanged bool
	}{
		{"nothing to do", `{"model":"plain",` + msgs + `}`, "plain", false, true},
		{"stream, client asked for usage", `{"model":"plain","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`, "plain", false, true},
		{"rewrite only", `{ "model" : "alias" , ` + msgs + ` }`, "real-model-v2", false, false},
		{"rewrite, model after prompt", `{` + msgs + `,"model":"alias"}`, "real-model-v2", false, false},
		{"usage, no stream_options", `{"model":"plain","stream":true,` + msgs + `}`, "plain", true, false},
		{"usage, stream_options null", `{"model":"plain","stream":true,"stream_options":null,` + msgs + `}`, "plain", true, false},
		{"usage, stream_options empty", `{"model":"plain","stream":true,"stream_options":{ },` + msgs + `}`, "plain", true, false},
		{"usage, stream_options other", `{"model":"plain","stream":true,"stream_options":{"continuous_usage_stats":false},` + msgs + `}`, "plain", true, false},
		{"usage, include_usage false", `{"model":"plain","stream":true,"stream_options":{"include_usage":false},` + msgs + `}`, "plain", true, false},
		{"usage, include_usage null", `{"model":"plain","stream":true,"stream_options":{"include_usage":null},` + msgs + `}`, "plain", true, false},
		{"rewrite and usage, prompt between", `{"model":"alias",` + msgs + `,"stream":true,"stream_options":{}}`, "real-model-v2", true, false},
		{"rewrite and usage, pretty", "{\n  \"stream\": true,\n  " + msgs + ",\n  \"model\": \"alias\"\n}\n", "real-model-v2", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			d, err := c.Decide(EndpointChatCompletions, body, "")
			require.NoError(t, err)
			require.Equal(t, tt.target, d.TargetModel)
			require.Equal(t, gjson.GetBytes(body, "stream").Bool(), d.IncludeUsage)
			if tt.unchanged {
				require.Nil(t, d.Body)
				require.Same(t, &body[len(body)-len(d.Prompt)-len(`}`)], &d.Prompt[0])
				return
			}
			require.NotNil(t, d.Body)
			var got map[string]any
			require.NoError(t, json.Unmarshal(d.Body, &got))
			require.Equal(t, edited(t, body, tt.target, tt.askUsage), got)
			// The prompt is the same bytes, found in the new body.
			require.Equal(t, gjson.GetBytes(body, "messages").Raw, string(d.Prompt))
			require.Equal(t, gjson.GetBytes(d.Body, "messages").Raw, string(d.Prompt))
			require.Contains(t, string(d.Body), msgs, "bytes outside the edits are kept")
		})
	}
}

func TestDecideModels(t *testing.T) {
	c := mustParse(t, `{
		"models":[{"name":"food-review"},{"name":"base"}],
		"rewrites":[{"model":"food-review","targets":[{"model":"food-review-v1","weight":90},{"model":"food-review-v2","weight":10}]}]
	}`)
	body := func(model string) []byte {
		return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"x"}]}`)
	}

	d, err := c.Decide(EndpointChatCompletions, body("base"), "")
	require.NoError(t, err)
	require.Equal(t, "base", d.Model)
	require.Equal(t, "base", d.TargetModel)
	require.Nil(t, d.Body)

	_, err = c.Decide(EndpointChatCompletions, body("gpt-5"), "")
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 404, e.Status)
	require.Equal(t, `{"error":{"message":"The model `+"`gpt-5`"+` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
		string(e.Body()))

	for _, forced := range []string{"food-review-v1", "food-review-v2"} {
		t.Run("forced "+forced, func(t *testing.T) {
			for range 50 {
				d, err := c.Decide(EndpointChatCompletions, body("food-review"), forced)
				require.NoError(t, err)
				require.Equal(t, "food-review", d.Model)
				require.Equal(t, forced, d.TargetModel)
				require.Equal(t, forced, gjson.GetBytes(d.Body, "model").Str)
			}
		})
	}
	t.Run("header naming no target is ignored", func(t *testing.T) {
		seen := map[string]bool{}
		for range 2000 { // p(no v2 in 2000 draws at 10%) = 0.9^2000
			d, err := c.Decide(EndpointChatCompletions, body("food-review"), "base")
			require.NoError(t, err)
			seen[d.TargetModel] = true
		}
		require.Equal(t, map[string]bool{"food-review-v1": true, "food-review-v2": true}, seen)
	})
	t.Run("header without a rule is ignored", func(t *testing.T) {
		d, err := c.Decide(EndpointChatCompletions, body("base"), "food-review-v1")
		require.NoError(t, err)
		require.Equal(t, "base", d.TargetModel)
	})
}

func TestRewritePickFollowsWeights(t *testing.T) {
	c := mustParse(t, `{"rewrites":[{"model":"m","targets":[{"model":"a","weight":3},{"model":"b","weight":1},{"model":"c","weight":6}]}]}`)
	rule := c.rules["m"]
	require.Equal(t, uint64(10), rule.total)
	counts := map[string]int{}
	for n := range rule.total {
		counts[rule.pick(n)]++
	}
	require.Equal(t, map[string]int{"a": 3, "b": 1, "c": 6}, counts)
}

func TestDecideFallbackRule(t *testing.T) {
	c := mustParse(t, `{"rewrites":[{"model":"x","targets":[{"model":"x-v2"}]},{"targets":[{"model":"default-model"}]}]}`)
	for model, want := range map[string]string{"x": "x-v2", "anything": "default-model", "default-model": "default-model"} {
		d, err := c.Decide(EndpointCompletions, []byte(`{"model":"`+model+`","prompt":"p"}`), "")
		require.NoError(t, err)
		require.Equal(t, want, d.TargetModel, model)
		require.Equal(t, model != want, d.Body != nil)
	}
}

func TestDecideUsageByEndpoint(t *testing.T) {
	on := mustParse(t, ``)
	off := mustParse(t, `{"tokenAccounting":false}`)
	tests := []struct {
		name     string
		c        *Config
		ep       Endpoint
		body     string
		edit     bool
		reported bool
	}{
		{"chat stream", on, EndpointChatCompletions, `{"model":"m","stream":true,"messages":[1]}`, true, true},
		{"completions stream", on, EndpointCompletions, `{"model":"m","stream":true,"prompt":"p"}`, true, true},
		{"responses stream reports usage anyway", on, EndpointResponses, `{"model":"m","stream":true,"input":"p"}`, false, true},
		{"embeddings do not stream", on, EndpointEmbeddings, `{"model":"m","stream":true,"input":"p"}`, false, false},
		{"not streamed", on, EndpointChatCompletions, `{"model":"m","messages":[1]}`, false, false},
		{"accounting off", off, EndpointChatCompletions, `{"model":"m","stream":true,"messages":[1]}`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.c.Decide(tt.ep, []byte(tt.body), "")
			require.NoError(t, err)
			require.Equal(t, tt.edit, d.Body != nil)
			require.Equal(t, tt.reported, d.IncludeUsage)
			if tt.edit {
				require.True(t, gjson.GetBytes(d.Body, "stream_options.include_usage").Bool())
			}
		})
	}
}

func TestDecideBodyLimit(t *testing.T) {
	c := mustParse(t, `{"maxRequestBodyBytes": 64}`)
	ok := []byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`)
	_, err := c.Decide(EndpointChatCompletions, ok, "")
	require.NoError(t, err)
	big := []byte(`{"model":"m","messages":[{"role":"user","content":"0123456789abcdef"}]}`)
	_, err = c.Decide(EndpointChatCompletions, big, "")
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 413, e.Status)
	require.Equal(t, `{"error":{"message":"request body is larger than 64 bytes","type":"invalid_request_error","param":null,"code":"request_too_large"}}`, string(e.Body()))
	require.NoError(t, c.CheckBodySize(64))
	require.Error(t, c.CheckBodySize(65))
}

func TestDecideDoesNotAliasBody(t *testing.T) {
	c := mustParse(t, ``)
	body := []byte(`{"model":"unlisted","messages":[1]}`)
	d, err := c.Decide(EndpointChatCompletions, body, "")
	require.NoError(t, err)
	copy(body, `{"model":"XXXXXXXX`)
	require.Equal(t, "unlisted", d.Model)
	require.Equal(t, "unlisted", d.TargetModel)
}

func TestRequestPathDoesNotAllocate(t *testing.T) {
	c := mustParse(t, `{"models":[{"name":"llama-3-8b"}]}`)
	body := chatBody(8 << 10)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Decide(EndpointChatCompletions, body, ""); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

func TestDecideInvocations(t *testing.T) {
	c := mustParse(t, `{"models":[{"name":"m"}]}`)
	d, err := c.Decide(EndpointInvocations, []byte(`{"model":"m","prompt":"p","stream":true}`), "")
	require.NoError(t, err)
	require.Equal(t, EndpointCompletions, d.Endpoint)
	require.True(t, d.IncludeUsage, "usage is asked for as on /v1/completions")
	require.Contains(t, string(d.Body), `"stream_options":{"include_usage":true}`)
	_, err = c.Decide(EndpointInvocations, []byte(`{"model":"other","messages":[{"role":"user"}]}`), "")
	require.Equal(t, "model_not_found", err.(*Error).Code)
}
