package transform

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

func geminiFor(t testing.TB, config string) *geminiTranslator {
	t.Helper()
	tr := mustBackend(t, config, testKey).NewTranslator().(*geminiTranslator)
	tr.now = func() time.Time { return time.Unix(1700000000, 0) }
	return tr
}

func TestGeminiRequest(t *testing.T) {
	for _, tc := range []struct {
		name, config, in, want string
	}{
		{"minimal", `{"schema":"gemini"}`,
			`{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`},
		{"system hoisted, assistant turn, generation config", `{"schema":"gemini"}`,
			`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},
			  {"role":"developer","content":[{"type":"text","text":"No lists."},{"type":"text","text":""}]},
			  {"role":"assistant","content":"Hello"},{"role":"assistant","content":""},{"role":"user","content":"more"}],
			 "max_tokens":50,"max_completion_tokens":60,"temperature":0.5,"top_p":0.9,"top_k":40,"stop":"END",
			 "presence_penalty":0.1,"frequency_penalty":0.2,"seed":7,"n":1,"logprobs":false,"user":"u-1"}`,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":"Hello"}]},{"role":"user","parts":[{"text":"more"}]}],
			  "systemInstruction":{"parts":[{"text":"Be brief."},{"text":"No lists."}]},
			  "generationConfig":{"maxOutputTokens":60,"temperature":0.5,"topP":0.9,"topK":40,"presencePenalty":0.1,"frequencyPenalty":0.2,"seed":7,"stopSequences":["END"]}}`},
		{"images", `{"schema":"gemini"}`,
			`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
			  {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
			  {"type":"image_url","image_url":{"url":"gs://bucket/cat.JPG"}},
			  {"type":"image_url","image_url":{"url":"https://example.com/a.b/dog.webp?x=1"}}]}]}`,
			`{"contents":[{"role":"user","parts":[{"text":"What is this?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
			  {"fileData":{"mimeType":"image/jpeg","fileUri":"gs://bucket/cat.JPG"}},
			  {"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/a.b/dog.webp?x=1"}}]}]}`},
		{"tools, calls and results by name", `{"schema":"gemini"}`,
			`{"model":"m","messages":[{"role":"user","content":"Weather in SF and NYC?"},
			  {"role":"assistant","content":"Checking.","tool_calls":[
			    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}},
			    {"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]},
			  {"role":"tool","tool_call_id":"call_2","content":"noon"},
			  {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"15"},{"type":"text","text":"C"}]},
			  {"role":"user","content":"thanks"}],
			 "tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"additionalProperties":false}}},
			          {"type":"function","function":{"name":"get_time"}}],
			 "tool_choice":{"type":"function","function":{"name":"get_weather"}}}`,
			`{"contents":[{"role":"user","parts":[{"text":"Weather in SF and NYC?"}]},
			  {"role":"model","parts":[{"text":"Checking."},{"functionCall":{"name":"get_weather","args":{"location":"SF"}}},{"functionCall":{"name":"get_time","args":{}}}]},
			  {"role":"user","parts":[{"functionResponse":{"name":"get_time","response":{"content":"noon"}}},{"functionResponse":{"name":"get_weather","response":{"content":"15C"}}}]},
			  {"role":"user","parts":[{"text":"thanks"}]}],
			  "tools":[{"functionDeclarations":[{"name":"get_weather","description":"Get the weather","parametersJsonSchema":{"type":"object","properties":{"location":{"type":"string"}},"additionalProperties":false}},{"name":"get_time"}]}],
			  "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}}}`},
		{"tool_choice none, empty tools, json_schema", `{"schema":"vertex_ai","project":"p","location":"us-central1"}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[],"tool_choice":"none",
			  "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}`,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}},
			  "generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}}}`},
		{"json_object", `{"schema":"gemini"}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},"tool_choice":"auto"}`,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}},"generationConfig":{"responseMimeType":"application/json"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := geminiFor(t, tc.config)
			out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.in)})
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(out.Body))
		})
	}
}

func TestGeminiRequestHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, config, body string
		want               map[string]string
	}{
		{"gemini, JSON", `{"schema":"gemini"}`, `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{":path": "/v1beta/models/gemini-2.5-flash:generateContent", "x-goog-api-key": testKey, "content-type": "application/json"}},
		{"gemini, stream, override, models/ prefix", `{"schema":"gemini","model":"models/gemini-2.5-pro","pathPrefix":"/v1"}`,
			`{"model":"smart","messages":[{"role":"user","content":"hi"}],"stream":true}`,
			map[string]string{":path": "/v1/models/gemini-2.5-pro:streamGenerateContent?alt=sse", "x-goog-api-key": testKey, "content-type": "application/json"}},
		{"vertex", `{"schema":"vertex_ai","project":"my-proj","location":"europe-west4"}`,
			`{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}],"stream":true}`,
			map[string]string{":path": "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
				"authorization": "Bearer " + testKey, "content-type": "application/json"}},
		{"hostile model name stays one segment", `{"schema":"gemini"}`,
			`{"model":"../../x:embed?key=1#","messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{":path": "/v1beta/models/..%2F..%2Fx%3Aembed%3Fkey%3D1%23:generateContent", "x-goog-api-key": testKey, "content-type": "application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := geminiFor(t, tc.config)
			out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.body)})
			require.NoError(t, err)
			h := map[string]string{"authorization": "Bearer client", "x-api-key": "client", "x-goog-api-key": "client", "accept-encoding": "gzip"}
			applyHeaders(h, out.Headers)
			require.Equal(t, itoa(len(out.Body)), h["content-length"])
			delete(h, "content-length")
			require.Equal(t, tc.want, h)
		})
	}
}

func TestGeminiRequestErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, param string }{
		{"n", `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}`, "n"},
		{"logprobs", `{"model":"m","messages":[{"role":"user","content":"hi"}],"logprobs":true}`, "logprobs"},
		{"max_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, "max_tokens"},
		{"temperature type", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}`, "temperature"},
		{"stop type", `{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":[1]}`, "stop"},
		{"response_format", `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"xml"}}`, "response_format"},
		{"json_schema without schema", `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{}}}`, "response_format.json_schema.schema"},
		{"tool type", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"tool_choice", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"maybe"}`, "tool_choice"},
		{"unknown tool result", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_9","content":"x"}]}`, "messages[1].tool_call_id"},
		{"arguments not an object", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"image http", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/a.png"}}]}]}`, "messages[0].content[0].image_url"},
		{"image without type", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a"}}]}]}`, "messages[0].content[0].image_url"},
		{"data URL not an image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGk="}}]}]}`, "messages[0].content[0].image_url"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type"},
		{"role", `{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role"},
		{"system part", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url"}]}]}`, "messages[0].content[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := geminiFor(t, `{"schema":"gemini"}`).TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.body)})
			require.Error(t, err)
			e := err.(*Error)
			require.Equal(t, 400, e.Status)
			require.Equal(t, tc.param, e.Param)
		})
	}
	_, err := geminiFor(t, `{"schema":"gemini"}`).TranslateRequest(UpstreamRequest{Path: "/v1/embeddings", Body: []byte(`{"model":"m","input":"x"}`)})
	require.Equal(t, 404, err.(*Error).Status)
}

func TestGeminiBackendConfig(t *testing.T) {
	for _, tc := range []struct{ config, err string }{
		{`{"schema":"vertex_ai","location":"us-central1"}`, "project: required for schema vertex_ai"},
		{`{"schema":"vertex_ai","project":"p"}`, "location: required for schema vertex_ai"},
		{`{"schema":"vertex_ai","project":"p/../q","location":"l"}`, "project: must be a plain name"},
		{`{"schema":"gemini","project":"p"}`, "project: only for schema vertex_ai"},
		{`{"schema":"gemini","maxTokens":5}`, "maxTokens: only for schema anthropic"},
		{`{"schema":"bedrock"}`, "known: anthropic, aws_bedrock, azure_openai, gemini, openai, vertex_ai"},
	} {
		_, err := ParseBackend([]byte(tc.config), "")
		require.ErrorContains(t, err, tc.err, tc.config)
	}
}

// startGemini runs the request and response headers steps.
func startGemini(t testing.TB, tr *geminiTranslator, stream bool, status int, ct string) {
	t.Helper()
	body := `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	}
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(body)})
	require.NoError(t, err)
	_, err = tr.TranslateResponseHeaders(UpstreamResponse{Status: status, ContentType: ct})
	require.NoError(t, err)
}

const geminiToolResponse = `{"candidates":[{"content":{"role":"model","parts":[
  {"text":"Need the weather.","thought":true},{"text":"Checking \"SF\" 🌁."},
  {"functionCall":{"name":"get_weather","args":{"location":"SF"}}},{"functionCall":{"id":"fc-2","name":"get_time","args":{}}}]},
  "finishReason":"STOP","index":0,"safetyRatings":[]}],
 "usageMetadata":{"promptTokenCount":120,"candidatesTokenCount":30,"totalTokenCount":165,"cachedContentTokenCount":100,"thoughtsTokenCount":15},
 "modelVersion":"gemini-2.5-flash-001","responseId":"resp-1"}`

func TestGeminiResponse(t *testing.T) {
	tr := geminiFor(t, `{"schema":"gemini"}`)
	startGemini(t, tr, false, 200, "application/json; charset=UTF-8")
	out := translateAll(tr, []byte(geminiToolResponse), 7)
	require.JSONEq(t, `{"id":"resp-1","object":"chat.completion","created":1700000000,"model":"gemini-2.5-flash-001",
		"choices":[{"index":0,"message":{"role":"assistant","content":"Checking \"SF\" 🌁.","reasoning_content":"Need the weather.",
		  "tool_calls":[{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}},
		                {"id":"fc-2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
		  "logprobs":null,"finish_reason":"tool_calls"}],
		"usage":{"prompt_tokens":120,"completion_tokens":45,"total_tokens":165,"prompt_tokens_details":{"cached_tokens":100},"completion_tokens_details":{"reasoning_tokens":15}}}`, string(out))
	u, ok := tr.Usage()
	require.True(t, ok)
	require.Equal(t, Usage{InputTokens: 120, CachedInputTokens: 100, OutputTokens: 45, ReasoningTokens: 15, TotalTokens: 165}, u)
	mu, ok := ParseUsage(out) // what the ai_router's meter reads agrees
	require.True(t, ok)
	require.Equal(t, u, mu)
}

func TestGeminiResponseShapes(t *testing.T) {
	for _, tc := range []struct{ name, config, in, want string }{
		{"override names the request's model, length", `{"schema":"gemini","model":"gemini-2.5-pro"}`,
			`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS"}],"modelVersion":"gemini-2.5-pro-002"}`,
			`{"id":"gemini","object":"chat.completion","created":1700000000,"model":"gemini-2.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"logprobs":null,"finish_reason":"length"}],
			  "usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`},
		{"safety finish", `{"schema":"gemini"}`,
			`{"candidates":[{"finishReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]}]}`,
			`{"id":"gemini","object":"chat.completion","created":1700000000,"model":"gemini-2.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":null},"logprobs":null,"finish_reason":"content_filter"}],
			  "usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`},
		{"blocked prompt", `{"schema":"gemini"}`,
			`{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}`,
			`{"error":{"message":"the Gemini backend blocked the prompt (PROHIBITED_CONTENT)","type":"invalid_request_error","param":null,"code":"content_filter"}}`},
		{"error under a 200", `{"schema":"gemini"}`,
			`{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`,
			`{"error":{"message":"The model is overloaded.","type":"server_error","param":null,"code":"overloaded"}}`},
		{"not JSON", `{"schema":"gemini"}`, `<html>`,
			`{"error":{"message":"the Gemini backend sent a response that is not a GenerateContentResponse","type":"server_error","param":null,"code":""}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := geminiFor(t, tc.config)
			startGemini(t, tr, false, 200, "application/json")
			require.JSONEq(t, tc.want, string(translateAll(tr, []byte(tc.in), 5)))
		})
	}
}

func TestGeminiErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   Error
	}{
		{"invalid argument", 400, `{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT","details":[]}}`,
			Error{Status: 400, Type: invalidRequest, Code: "invalid_argument", Message: "Invalid JSON payload received."}},
		{"quota, in a list", 429, `[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]`,
			Error{Status: 429, Type: "requests", Code: "rate_limit_exceeded", Message: "Resource has been exhausted"}},
		{"bad key", 403, `{"error":{"code":403,"message":"API key not valid.","status":"PERMISSION_DENIED"}}`,
			Error{Status: 403, Type: invalidRequest, Code: "permission_denied", Message: "API key not valid."}},
		{"html", 502, `<html>bad gateway</html>`,
			Error{Status: 502, Type: "server_error", Message: "the Gemini backend returned status 502"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := geminiFor(t, `{"schema":"gemini"}`)
			startGemini(t, tr, false, tc.status, "application/json")
			out := translateAll(tr, []byte(tc.body), 3)
			require.Equal(t, string(tc.want.Body()), string(out))
		})
	}
}

const geminiStreamBody = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Thinking\",\"thought\":true}]}}],\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\r\n\r\n" +
	"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8,\"totalTokenCount\":8},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\n\n" +
	": comment\n" +
	"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo \\\"x\\\"\"},{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\"}],\n" +
	"data: \"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2,\"totalTokenCount\":14},\"responseId\":\"r-1\"}\n\n"

func TestGeminiStream(t *testing.T) {
	const head = `{"id":"r-1","object":"chat.completion.chunk","created":1700000000,"model":"gemini-2.5-flash",`
	chunk := func(delta, finish string) string {
		return head + `"choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]}`
	}
	want := []string{
		chunk(`{"role":"assistant","content":""}`, "null"),
		chunk(`{"reasoning_content":"Thinking"}`, "null"),
		chunk(`{"content":"Hel"}`, "null"),
		chunk(`{"content":"lo \"x\""}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"id":"call_0","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}`, "null"),
		chunk(`{}`, `"tool_calls"`),
		head + `"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":6,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":2}}}`,
		"[DONE]",
	}
	for _, n := range []int{0, 1, 2, 3, 7, 64} {
		tr := geminiFor(t, `{"schema":"gemini"}`)
		startGemini(t, tr, true, 200, "text/event-stream")
		got := streamEvents(t, translateAll(tr, []byte(geminiStreamBody), n))
		require.Equal(t, want, got, "pieces of %d", n)
		u, ok := tr.Usage()
		require.True(t, ok)
		require.Equal(t, Usage{InputTokens: 8, OutputTokens: 6, ReasoningTokens: 2, TotalTokens: 14}, u)
	}
}

func TestGeminiStreamEdges(t *testing.T) {
	for _, tc := range []struct{ name, in, last string }{
		{"cut before a finishReason", "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n",
			`{"error":{"message":"the Gemini stream ended before a finishReason","type":"server_error","param":null,"code":""}}`},
		{"not JSON", "data: {nope}\n\n",
			`{"error":{"message":"the Gemini backend sent an event that is not JSON","type":"server_error","param":null,"code":""}}`},
		{"blocked prompt", "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\n\n",
			`{"error":{"message":"the Gemini backend blocked the prompt (SAFETY)","type":"invalid_request_error","param":null,"code":"content_filter"}}`},
		{"error event", "data: {\"error\":{\"code\":500,\"message\":\"Internal error\",\"status\":\"INTERNAL\"}}\n\ndata: {\"candidates\":[]}\n\n",
			`{"error":{"message":"Internal error","type":"server_error","param":null,"code":""}}`},
		{"no trailing blank line", "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"MAX_TOKENS\"}]}", "[DONE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := geminiFor(t, `{"schema":"gemini"}`)
			startGemini(t, tr, true, 200, "text/event-stream")
			got := streamEvents(t, translateAll(tr, []byte(tc.in), 3))
			require.Equal(t, tc.last, got[len(got)-1])
		})
	}
}

func TestGeminiStreamEndlessLine(t *testing.T) {
	tr := geminiFor(t, `{"schema":"gemini"}`)
	startGemini(t, tr, true, 200, "text/event-stream")
	chunk := []byte("data: {\"x\":\"" + strings.Repeat("a", 1<<20))
	var out []byte
	for i := 0; i < 17 && len(out) == 0; i++ {
		out, _ = tr.TranslateResponseBody(out, chunk, false)
		chunk = chunk[:1<<20]
		for j := range chunk {
			chunk[j] = 'a'
		}
	}
	require.Contains(t, string(out), "longer than")
	require.Nil(t, tr.stream.events.line, "what was held is let go")
	out, _ = tr.TranslateResponseBody(nil, []byte("\n\n"), true)
	require.Empty(t, out, "nothing after the error")
}

// What a stream keeps of a finishReason maps as the reason itself does.
func TestGeminiKeptFinishReason(t *testing.T) {
	require.NotContains(t, geminiFinishReasons, unknownFinishReason)
	reasons := []string{"", "NEW_REASON", "stop", unknownFinishReason}
	for k := range geminiFinishReasons {
		reasons = append(reasons, k)
	}
	for _, r := range reasons {
		for _, calls := range []bool{false, true} {
			want := appendGeminiFinishReason(nil, gjson.Result{Type: gjson.String, Str: r}, calls)
			got := appendGeminiFinishReason(nil, gjson.Result{Type: gjson.String, Str: keptFinishReason(r)}, calls)
			require.Equal(t, string(want), string(got), r)
		}
	}
}
