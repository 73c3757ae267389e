package transform

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

func anthropicFor(t testing.TB, config string) *anthropicTranslator {
	t.Helper()
	tr := mustBackend(t, config, testKey).NewTranslator().(*anthropicTranslator)
	tr.now = func() time.Time { return time.Unix(1700000000, 0) }
	return tr
}

func TestAnthropicRequest(t *testing.T) {
	for _, tc := range []struct {
		name, config, in, want string
	}{
		{"minimal, default max_tokens", `{"schema":"anthropic"}`,
			`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`},
		{"override, system and developer hoisted, sampling, stop, stream", `{"schema":"anthropic","model":"claude-opus-4-1","maxTokens":100}`,
			`{"model":"smart","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},
			  {"role":"developer","content":[{"type":"text","text":"No lists."},{"type":"text","text":""}]},{"role":"assistant","content":"Hello"},
			  {"role":"user","content":"more"}],
			 "max_tokens":50,"temperature":0.5,"top_p":0.9,"top_k":40,"stop":"END","stream":true,"stream_options":{"include_usage":true},
			 "user":"u-1","seed":7,"frequency_penalty":0.1}`,
			`{"model":"claude-opus-4-1","max_tokens":50,"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"No lists."}],
			  "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"Hello"}]},{"role":"user","content":"more"}],
			  "stop_sequences":["END"],"temperature":0.5,"top_p":0.9,"top_k":40,"stream":true,"metadata":{"user_id":"u-1"}}`},
		{"max_completion_tokens wins, stop array", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"max_completion_tokens":20,"stop":["a","b"],"n":1,"logprobs":false,"response_format":{"type":"text"}}`,
			`{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"hi"}],"stop_sequences":["a","b"]}`},
		{"images", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
			  {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
			  {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
			  {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
			  {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]}`},
		{"tools, tool calls and results", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"user","content":"Weather in SF and NYC?"},
			  {"role":"assistant","content":null,"tool_calls":[
			    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}},
			    {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
			  {"role":"tool","tool_call_id":"call_1","content":"15C"},
			  {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"20C"}]},
			  {"role":"user","content":"thanks"}],
			 "tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}},
			          {"type":"function","function":{"name":"noop"}}],
			 "tool_choice":"required","parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"Weather in SF and NYC?"},
			  {"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"location":"SF"}},
			                                 {"type":"tool_use","id":"call_2","name":"get_weather","input":{}}]},
			  {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"15C"},
			                            {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"20C"}]}]},
			  {"role":"user","content":"thanks"}],
			 "tools":[{"name":"get_weather","description":"Get the weather","input_schema":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}},
			          {"name":"noop","input_schema":{"type":"object","properties":{}}}],
			 "tool_choice":{"type":"any","disable_parallel_tool_use":true}}`},
		{"tool_choice function, text with tool call, trailing tool results", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"user","content":"x"},
			  {"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"refusal","refusal":"Not that."}],"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":" {} "}}]},
			  {"role":"tool","tool_call_id":"c","content":"ok"}],
			 "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"},
			  {"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"text","text":"Not that."},{"type":"tool_use","id":"c","name":"f","input":{}}]},
			  {"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"ok"}]}],
			 "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"}}`},
		{"tool_choice none drops the parallel flag; empty assistant turn skipped", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":""},{"role":"user","content":"y"}],
			 "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}],
			 "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`},
		{"parallel off without tool_choice", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"parallel_tool_calls":false,"tool_choice":null}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"}],
			 "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`},
		{"API version 2026-10-21: no sampling parameters", `{"schema":"anthropic","anthropicVersion":"2026-10-21"}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"top_p":0.9,"top_k":40}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`},
		{"escapes kept", `{"schema":"anthropic"}`,
			`{"model":"m","messages":[{"role":"system","content":"\u00e9\n\"q\""},{"role":"user","content":"\ud83d\ude80 \\ </script>"}]}`,
			`{"model":"m","max_tokens":4096,"system":[{"type":"text","text":"é\n\"q\""}],"messages":[{"role":"user","content":"🚀 \\ </script>"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := anthropicFor(t, tc.config)
			h := map[string]string{":path": "/v1/chat/completions", "authorization": "Bearer client", "api-key": "x",
				"accept-encoding": "gzip, br", "anthropic-beta": "client-chosen", "content-type": "text/plain"}
			out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.in)})
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(out.Body))
			applyHeaders(h, out.Headers)
			require.Equal(t, map[string]string{
				":path": "/v1/messages", "x-api-key": testKey, "anthropic-version": tr.backend.AnthropicVersion,
				"content-type": "application/json", "content-length": itoa(len(out.Body)),
			}, h)
		})
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestAnthropicRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		in, param, code string
	}{
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}`, "n", "unsupported_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}`, "logprobs", "unsupported_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`, "response_format", "unsupported_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, "max_tokens", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":1.5}`, "max_completion_tokens", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"9"}`, "max_tokens", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}`, "temperature", "invalid_type"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]}`, "stop", "invalid_type"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"stop":{}}`, "stop", "invalid_type"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":{}}`, "tools", "invalid_type"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"code_interpreter"}]}`, "tools[0].type", "unsupported_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name", "missing_required_parameter"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"always"}`, "tool_choice", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function"}}`, "tool_choice", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":1}`, "tool_choice", "invalid_type"},
		{`{"model":"m","messages":[1]}`, "messages[0]", "invalid_type"},
		{`{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role", "invalid_type"},
		{`{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":1}]}`, "messages[0].content", "invalid_type"},
		{`{"model":"m","messages":[{"role":"user","content":[ ]}]}`, "messages[0].content", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "messages[0].content[0].type", "unsupported_value"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":5}]}]}`, "messages[0].content[0].text", "invalid_type"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/tiff;base64,AA=="}}]}]}`, "messages[0].content[0].image_url", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, "messages[0].content[0].image_url", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`, "messages[0].content[0].image_url", "invalid_type"},
		{`{"model":"m","messages":[{"role":"system","content":[{"type":"image_url"}]}]}`, "messages[0].content[0]", "invalid_value"},
		{`{"model":"m","messages":[{"role":"system","content":7}]}`, "messages[0].content", "invalid_type"},
		{`{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id", "missing_required_parameter"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":{}}]}`, "messages[0].tool_calls", "invalid_type"},
		{`{"model":"m","messages":[{"role":"assistant","content":[{"type":"image_url"}]}]}`, "messages[0].content[0]", "invalid_value"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}`, "messages[0].tool_calls[0].id", "missing_required_parameter"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}]}`, "messages[0].tool_calls[0].function.name", "missing_required_parameter"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments", "invalid_value"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{"}}]}]}`, "messages[0].tool_calls[0].function.arguments", "invalid_value"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{}}}]}]}`, "messages[0].tool_calls[0].function.arguments", "invalid_type"},
		{`{"model":"m","messages":[]}`, "messages", "invalid_value"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}]`, "", "invalid_json"},
	} {
		t.Run(tc.param+" "+tc.code, func(t *testing.T) {
			_, err := anthropicFor(t, `{"schema":"anthropic"}`).TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.in)})
			require.Error(t, err)
			e := err.(*Error)
			require.Equal(t, 400, e.Status)
			require.Equal(t, tc.code, e.Code, e.Message)
			require.Equal(t, tc.param, e.Param, e.Message)
			require.True(t, json.Valid(e.Body()))
		})
	}
	for _, path := range []string{"/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models", "/v1/messages"} {
		_, err := anthropicFor(t, `{"schema":"anthropic"}`).TranslateRequest(UpstreamRequest{Path: path, Body: []byte(`{}`)})
		require.Equal(t, 404, err.(*Error).Status, path)
		require.Equal(t, "unknown_url", err.(*Error).Code, path)
	}
}

// startAnthropic runs the request and response headers steps.
func startAnthropic(t testing.TB, tr *anthropicTranslator, stream bool, status int, ct string) TranslatedResponseHeaders {
	t.Helper()
	body := `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	}
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(body)})
	require.NoError(t, err)
	rh, err := tr.TranslateResponseHeaders(UpstreamResponse{Status: status, ContentType: ct})
	require.NoError(t, err)
	return rh
}

// translateAll feeds body in pieces of size n (all at once when n <= 0).
func translateAll(tr Translator, body []byte, n int) []byte {
	if n <= 0 {
		n = len(body) + 1
	}
	var out []byte
	if len(body) == 0 {
		out, _ = tr.TranslateResponseBody(out, nil, true)
		return out
	}
	for i := 0; i < len(body); i += n {
		end := min(i+n, len(body))
		out, _ = tr.TranslateResponseBody(out, body[i:end], end == len(body))
	}
	return out
}

func TestAnthropicMessage(t *testing.T) {
	tr := anthropicFor(t, `{"schema":"anthropic"}`)
	rh := startAnthropic(t, tr, false, 200, "application/json")
	require.Equal(t, 200, rh.Status)
	require.Equal(t, []HeaderEdit{{Name: "content-type", Value: "application/json"}, {Name: "content-length", Remove: true}}, rh.Headers)
	out := translateAll(tr, readFixture(t, "anthropic/message_tools.json"), 7)
	require.JSONEq(t, `{"id":"msg_01Aq9w938a90dw8q","object":"chat.completion","created":1700000000,"model":"claude-sonnet-4-5",
		"choices":[{"index":0,"message":{"role":"assistant","content":"I'll check the weather in \"SF\" — 🌁.",
		  "reasoning_content":"Need the weather tool.",
		  "tool_calls":[{"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"San Francisco, CA\", \"unit\": \"celsius\"}"}}]},
		  "logprobs":null,"finish_reason":"tool_calls"}],
		"usage":{"prompt_tokens":3195,"completion_tokens":503,"total_tokens":3698,"prompt_tokens_details":{"cached_tokens":1000},
		  "cache_read_input_tokens":1000,"cache_creation_input_tokens":100}}`, string(out))
	u, ok := tr.Usage()
	require.True(t, ok)
	require.Equal(t, Usage{InputTokens: 3195, CachedInputTokens: 1000, OutputTokens: 503, TotalTokens: 3698}, u)
	require.Equal(t, uint64(100), tr.CacheCreationInputTokens())
	// The usage the ai_router's meter reads from the translated body agrees.
	mu, ok := ParseUsage(out)
	require.True(t, ok)
	require.Equal(t, u, mu)
}

func TestAnthropicMessageShapes(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"text, overridden model named back", `{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-1","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":2}}`,
			`{"id":"msg_1","object":"chat.completion","created":1700000000,"model":"smart","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"logprobs":null,"finish_reason":"stop"}],
			  "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}`},
		{"max_tokens, no usage", `{"id":"msg_2","type":"message","content":[],"stop_reason":"max_tokens"}`,
			`{"id":"msg_2","object":"chat.completion","created":1700000000,"model":"smart","choices":[{"index":0,"message":{"role":"assistant","content":null},"logprobs":null,"finish_reason":"length"}]}`},
		{"not a message", `{"hello":1}`,
			`{"error":{"message":"the Anthropic backend sent a response that is not a message","type":"server_error","param":null,"code":""}}`},
		{"cut", `{"id":"msg_2","type":"message","content":[`,
			`{"error":{"message":"the Anthropic backend sent a response that is not a message","type":"server_error","param":null,"code":""}}`},
		{"error under 200", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			`{"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := anthropicFor(t, `{"schema":"anthropic","model":"claude-opus-4-1"}`)
			_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"smart","messages":[{"role":"user","content":"hi"}]}`)})
			require.NoError(t, err)
			_, err = tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: "application/json"})
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(translateAll(tr, []byte(tc.in), 3)))
		})
	}
}

func TestAnthropicErrors(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body       string
		wantStatus int
		typ, code  string
		message    string
	}{
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}`, 400, "invalid_request_error", "", "messages: roles must alternate"},
		{401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, 401, "invalid_request_error", "invalid_api_key", "invalid x-api-key"},
		{402, `{"type":"error","error":{"type":"billing_error","message":"credit balance too low"}}`, 429, "insufficient_quota", "insufficient_quota", "credit balance too low"},
		{403, `{"type":"error","error":{"type":"permission_error","message":"no"}}`, 403, "invalid_request_error", "permission_denied", "no"},
		{404, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}`, 404, "invalid_request_error", "not_found", "model: claude-x"},
		{413, `{"type":"error","error":{"type":"request_too_large","message":"too big"}}`, 413, "invalid_request_error", "request_too_large", "too big"},
		{429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`, 429, "requests", "rate_limit_exceeded", "slow down"},
		{500, `{"type":"error","error":{"type":"api_error","message":"oops"}}`, 500, "server_error", "", "oops"},
		{504, `{"type":"error","error":{"type":"timeout_error","message":"timed out"}}`, 504, "server_error", "timeout", "timed out"},
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}`, 503, "server_error", "overloaded", "Overloaded"},
		{418, `{"type":"error","error":{"type":"teapot_error","message":"short and stout"}}`, 418, "invalid_request_error", "", "short and stout"},
		{502, `<html>Bad Gateway</html>`, 502, "server_error", "", "the Anthropic backend returned status 502"},
		{529, `{"type":"error","error":"Overloaded"}`, 503, "server_error", "", "the Anthropic backend returned status 503"},
		{500, ``, 500, "server_error", "", "the Anthropic backend returned status 500"},
	} {
		t.Run(itoa(tc.status)+" "+tc.typ, func(t *testing.T) {
			tr := anthropicFor(t, `{"schema":"anthropic"}`)
			rh := startAnthropic(t, tr, true, tc.status, "application/json")
			require.Equal(t, tc.wantStatus, rh.Status)
			require.Equal(t, []HeaderEdit{{Name: "content-type", Value: "application/json"}, {Name: "content-length", Remove: true}}, rh.Headers)
			out := translateAll(tr, []byte(tc.body), 4)
			want := &Error{Status: tc.wantStatus, Type: tc.typ, Code: tc.code, Message: tc.message}
			require.Equal(t, string(want.Body()), string(out))
			require.Equal(t, want, tr.TranslateError(tc.status, []byte(tc.body)))
			_, ok := tr.Usage()
			require.False(t, ok)
		})
	}
	// A huge error body is read only up to the bound.
	tr := anthropicFor(t, `{"schema":"anthropic"}`)
	startAnthropic(t, tr, false, 500, "text/html")
	out := translateAll(tr, []byte(strings.Repeat("x", 1<<20)), 4096)
	require.Equal(t, `{"error":{"message":"the Anthropic backend returned status 500","type":"server_error","param":null,"code":""}}`, string(out))
	require.Nil(t, tr.resp.errBuf.buf)
}

func TestAnthropicCompressedResponse(t *testing.T) {
	tr := anthropicFor(t, `{"schema":"anthropic"}`)
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)})
	require.NoError(t, err)
	_, err = tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: "application/json", ContentEncoding: "gzip"})
	require.Equal(t, 502, err.(*Error).Status)
}

// streamEvents splits a translated stream into its data values.
func streamEvents(t *testing.T, out []byte) []string {
	t.Helper()
	s := string(out)
	require.True(t, strings.HasSuffix(s, "\n\n") || s == "", s)
	var events []string
	for _, ev := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		require.True(t, ok, ev)
		require.NotContains(t, data, "\n")
		require.True(t, data == "[DONE]" || json.Valid([]byte(data)), data)
		events = append(events, data)
	}
	return events
}

func TestAnthropicStream(t *testing.T) {
	in := readFixture(t, "anthropic/stream_tools.sse")
	const head = `{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet-4-5",`
	chunk := func(delta, finish string) string {
		return head + `"choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]}`
	}
	want := []string{
		chunk(`{"role":"assistant","content":""}`, "null"),
		chunk(`{"reasoning_content":"The user wants the weather — in \"SF\"."}`, "null"),
		chunk(`{"content":"Okay, let's check the weather for San Francisco, CA: 日本語 🚀"}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":""}}]}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\":"}}]}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":" \"San Francisco, CA\", \"unit\": \"fahrenheit\"}"}}]}`, "null"),
		chunk(`{}`, `"tool_calls"`),
		head + `"choices":[],"usage":{"prompt_tokens":600,"completion_tokens":89,"total_tokens":689,"prompt_tokens_details":{"cached_tokens":128},"cache_read_input_tokens":128,"cache_creation_input_tokens":0}}`,
		"[DONE]",
	}
	variants := map[string][]byte{
		"lf":   in,
		"crlf": []byte(strings.ReplaceAll(string(in), "\n", "\r\n")),
		"cr":   []byte(strings.ReplaceAll(string(in), "\n", "\r")),
	}
	for name, body := range variants {
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
			t.Run(name+"/"+itoa(n), func(t *testing.T) {
				tr := anthropicFor(t, `{"schema":"anthropic"}`)
				rh := startAnthropic(t, tr, true, 200, "text/event-stream; charset=utf-8")
				require.Equal(t, []HeaderEdit{{Name: "content-type", Value: "text/event-stream"}, {Name: "content-length", Remove: true}}, rh.Headers)
				out := translateAll(tr, body, n)
				require.Equal(t, want, streamEvents(t, out))
				u, ok := tr.Usage()
				require.True(t, ok)
				require.Equal(t, Usage{InputTokens: 600, CachedInputTokens: 128, OutputTokens: 89, TotalTokens: 689}, u)
				// The ai_router's meter, downstream, reads the same usage.
				m := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
				m.Write(out, time.Now())
				rep := m.Finish(time.Now())
				require.True(t, rep.HasUsage)
				require.Equal(t, u, rep.Usage)
				require.True(t, rep.Done)
			})
		}
	}
}

// Events go out as soon as their line is complete: nothing waits for the
// end of the stream or for the blank line.
func TestAnthropicStreamNotBuffered(t *testing.T) {
	tr := anthropicFor(t, `{"schema":"anthropic"}`)
	startAnthropic(t, tr, true, 200, "text/event-stream")
	out, _ := tr.TranslateResponseBody(nil, []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n"), false)
	require.Len(t, streamEvents(t, out), 1)
	out, _ = tr.TranslateResponseBody(nil, []byte("\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"He"), false)
	require.Empty(t, out, "half an event is held")
	out, _ = tr.TranslateResponseBody(nil, []byte("llo\"}}\n"), false)
	require.Equal(t, []string{`{"id":"m","object":"chat.completion.chunk","created":1700000000,"model":"c","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}`}, streamEvents(t, out))
	require.Empty(t, tr.stream.events.line, "only the unfinished line is held")
}

func TestAnthropicStreamEdges(t *testing.T) {
	const start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
	const text = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
	const head = `{"id":"m","object":"chat.completion.chunk","created":1700000000,"model":"c","choices":[{"index":0,"delta":`
	const role = head + `{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`
	const hi = head + `{"content":"Hi"},"logprobs":null,"finish_reason":null}]}`
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"cut mid-event", start + text + "event: content_block_delta\ndata: {\"type\":\"content_bl",
			[]string{role, hi, `{"error":{"message":"the Anthropic backend sent an event that is not JSON","type":"server_error","param":null,"code":""}}`}},
		{"cut between events", start + text,
			[]string{role, hi, `{"error":{"message":"the Anthropic stream ended before message_stop","type":"server_error","param":null,"code":""}}`}},
		{"empty", "",
			[]string{`{"error":{"message":"the Anthropic stream ended before message_stop","type":"server_error","param":null,"code":""}}`}},
		{"error event mid-stream", start + text + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n" + text,
			[]string{role, hi, `{"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}`}},
		{"unknown events, comments, ping, unknown deltas ignored", start + ": comment\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: brand_new\ndata: {\"type\":\"brand_new\",\"x\":{}}\n\n" +
			"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n" +
			"data: {\"type\":\"content_block_delta\",\"index\":5,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n" +
			"id: 7\nretry: 10\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			[]string{role, head[:len(head)-len(`"choices":[{"index":0,"delta":`)] + `"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}`, "[DONE]"}},
		{"data over two lines", start + "data: {\"type\":\"content_block_delta\",\"index\":0,\n" + "data: \"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
			[]string{role, hi, `{"error":{"message":"the Anthropic stream ended before message_stop","type":"server_error","param":null,"code":""}}`}},
		{"after message_stop, nothing", start + "data: {\"type\":\"message_stop\"}\n\n" + text,
			[]string{role, head[:len(head)-len(`"choices":[{"index":0,"delta":`)] + `"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}`, "[DONE]"}},
		{"tool block with a hostile index", start + "data: {\"type\":\"content_block_start\",\"index\":99999999999,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n",
			[]string{role, `{"error":{"message":"the Anthropic backend sent a tool_use block without a usable index","type":"server_error","param":null,"code":""}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 5} {
				tr := anthropicFor(t, `{"schema":"anthropic"}`)
				startAnthropic(t, tr, true, 200, "text/event-stream")
				require.Equal(t, tc.want, streamEvents(t, translateAll(tr, []byte(tc.in), n)), "pieces of %d", n)
			}
		})
	}
}

// A line that never ends is bounded: the stream ends with an error once it
// is over maxAnthropicEvent, and what was held is let go.
func TestAnthropicStreamEndlessLine(t *testing.T) {
	tr := anthropicFor(t, `{"schema":"anthropic"}`)
	startAnthropic(t, tr, true, 200, "text/event-stream")
	piece := []byte(strings.Repeat("a", 64<<10))
	var out []byte
	out, _ = tr.TranslateResponseBody(out, []byte("data: {\"type\":\"ping\",\"x\":\""), false)
	for i := 0; i < maxAnthropicEvent/len(piece)+2; i++ {
		out, _ = tr.TranslateResponseBody(out, piece, false)
		require.LessOrEqual(t, cap(tr.stream.events.line), 2*maxAnthropicEvent)
	}
	require.Nil(t, tr.stream.events.line)
	out, _ = tr.TranslateResponseBody(out, []byte("\"}\n\n"), true)
	require.Equal(t, []string{`{"error":{"message":"the Anthropic backend sent an event line longer than 4194304 bytes","type":"server_error","param":null,"code":""}}`}, streamEvents(t, out))
}

func TestAnthropicStreamOverriddenModel(t *testing.T) {
	tr := anthropicFor(t, `{"schema":"anthropic","model":"claude-opus-4-1"}`)
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"smart","messages":[{"role":"user","content":"hi"}],"stream":true}`)})
	require.NoError(t, err)
	_, err = tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: "text/event-stream"})
	require.NoError(t, err)
	out := translateAll(tr, readFixture(t, "anthropic/stream_tools.sse"), 100)
	events := streamEvents(t, out)
	for _, e := range events[:len(events)-1] {
		require.Equal(t, "smart", gjson.Get(e, "model").Str)
	}
	require.Equal(t, "[DONE]", events[len(events)-1])
	require.Len(t, events, 9, "no usage chunk: the client did not ask for one")
	u, ok := tr.Usage()
	require.True(t, ok, "usage is accounted all the same")
	require.Equal(t, uint64(89), u.OutputTokens)
}
