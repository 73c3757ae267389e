package transform

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/stretchr/testify/require"
)

// fakeSigner records what it signs and returns fixed signature headers.
type fakeSigner struct {
	host, path, contentType string
	body                    []byte
	at                      time.Time
	err                     error
}

func (f *fakeSigner) Sign(host, path, contentType string, body []byte, at time.Time) ([]HeaderEdit, error) {
	f.host, f.path, f.contentType, f.body, f.at = strings.Clone(host), strings.Clone(path), contentType, append([]byte(nil), body...), at // host and path are the translator's memory
	return []HeaderEdit{{Name: "authorization", Value: "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=abc"}, {Name: "x-amz-date", Value: "20231114T221320Z"}}, f.err
}

func bedrockFor(t testing.TB, config string) (*bedrockTranslator, *fakeSigner) {
	t.Helper()
	s := &fakeSigner{}
	tr := mustBackend(t, config, "").WithSigner(s).NewTranslator().(*bedrockTranslator)
	tr.now = func() time.Time { return time.Unix(1700000000, 0) }
	return tr, s
}

func TestBedrockRequest(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"minimal", `{"model":"anthropic.claude-3-haiku-20240307-v1:0","messages":[{"role":"user","content":"hi"}]}`,
			`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`},
		{"system, assistant, inference config", `{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},
			{"role":"assistant","content":[{"type":"text","text":"Hello"}]},{"role":"developer","content":"No lists."},{"role":"user","content":"more"}],
			"max_tokens":50,"temperature":0.5,"top_p":0.9,"top_k":40,"stop":["END"],"n":1,"user":"u"}`,
			`{"messages":[{"role":"user","content":[{"text":"hi"}]},{"role":"assistant","content":[{"text":"Hello"}]},{"role":"user","content":[{"text":"more"}]}],
			  "system":[{"text":"Be brief."},{"text":"No lists."}],"inferenceConfig":{"maxTokens":50,"temperature":0.5,"topP":0.9,"stopSequences":["END"]}}`},
		{"images, tools, calls and results", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What?"},{"type":"image_url","image_url":{"url":"data:image/webp;base64,UklGR="}}]},
			{"role":"assistant","content":null,"tool_calls":[{"id":"tooluse_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}},{"id":"tooluse_2","type":"function","function":{"name":"noop","arguments":""}}]},
			{"role":"tool","tool_call_id":"tooluse_1","content":"15C"},{"role":"tool","tool_call_id":"tooluse_2","content":[{"type":"text","text":"ok"}]}],
			"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}},{"type":"function","function":{"name":"noop"}}],
			"tool_choice":"required"}`,
			`{"messages":[{"role":"user","content":[{"text":"What?"},{"image":{"format":"webp","source":{"bytes":"UklGR="}}}]},
			  {"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"location":"SF"}}},{"toolUse":{"toolUseId":"tooluse_2","name":"noop","input":{}}}]},
			  {"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_1","content":[{"text":"15C"}]}},{"toolResult":{"toolUseId":"tooluse_2","content":[{"text":"ok"}]}}]}],
			  "toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","description":"Weather","inputSchema":{"json":{"type":"object","properties":{"location":{"type":"string"}}}}}},
			                         {"toolSpec":{"name":"noop","inputSchema":{"json":{"type":"object","properties":{}}}}}],"toolChoice":{"any":{}}}}`},
		{"tool_choice function and none", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}}],"toolChoice":{"tool":{"name":"f"}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, s := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
			out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.in)})
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(out.Body))
			require.Equal(t, out.Body, s.body, "the final body is what is signed")
		})
	}
}

func TestBedrockRequestHeaders(t *testing.T) {
	tr, s := bedrockFor(t, `{"schema":"aws_bedrock","region":"eu-central-1","model":"anthropic.claude-3-5-sonnet-20240620-v1:0"}`)
	out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	require.NoError(t, err)
	h := map[string]string{"authorization": "Bearer client", "x-api-key": "client", "x-amz-security-token": "client", "accept-encoding": "gzip"}
	applyHeaders(h, out.Headers)
	require.Equal(t, map[string]string{
		":path":          "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
		":authority":     "bedrock-runtime.eu-central-1.amazonaws.com",
		"content-length": itoa(len(out.Body)),
		"content-type":   "application/json",
		"authorization":  "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=abc",
		"x-amz-date":     "20231114T221320Z",
	}, h, "the client's credentials are gone, the signature's headers set")
	require.Equal(t, "bedrock-runtime.eu-central-1.amazonaws.com", s.host)
	require.Equal(t, h[":path"], s.path)
	require.Equal(t, time.Unix(1700000000, 0), s.at)

	// A signer that fails refuses the attempt (500), naming no secret.
	tr, s = bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
	s.err = errors.New("clock")
	_, err = tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)})
	require.Equal(t, 500, err.(*Error).Status)
	// No signer at all: refused too.
	_, err = mustBackend(t, `{"schema":"aws_bedrock","region":"us-east-1"}`, "").NewTranslator().TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)})
	require.Equal(t, 500, err.(*Error).Status)
}

func TestBedrockRequestErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, param string }{
		{"n", `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":3}`, "n"},
		{"response_format", `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`, "response_format"},
		{"image URL", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}`, "messages[0].content[0].image_url"},
		{"image type", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AA"}}]}]}`, "messages[0].content[0].image_url"},
		{"tool arguments", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"1"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"max_completion_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":-1}`, "max_completion_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
			_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(tc.body)})
			require.Equal(t, 400, err.(*Error).Status)
			require.Equal(t, tc.param, err.(*Error).Param)
		})
	}
	for _, tc := range []struct{ config, err string }{
		{`{"schema":"aws_bedrock"}`, "region: required for schema aws_bedrock"},
		{`{"schema":"aws_bedrock","region":"us-east-1.evil.com/"}`, "region: must be an AWS region"},
		{`{"schema":"aws_bedrock","region":"us-east-1","pathPrefix":"/x"}`, "pathPrefix: not for schema aws_bedrock"},
		{`{"schema":"anthropic","region":"us-east-1"}`, "region: only for schema aws_bedrock"},
	} {
		_, err := ParseBackend([]byte(tc.config), "")
		require.ErrorContains(t, err, tc.err, tc.config)
	}
}

func startBedrock(t testing.TB, tr *bedrockTranslator, stream bool, status int, ct string) {
	t.Helper()
	body := `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"claude","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	}
	_, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(body)})
	require.NoError(t, err)
	_, err = tr.TranslateResponseHeaders(UpstreamResponse{Status: status, ContentType: ct})
	require.NoError(t, err)
}

func TestBedrockResponse(t *testing.T) {
	tr, _ := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
	startBedrock(t, tr, false, 200, "application/json")
	out := translateAll(tr, []byte(`{"output":{"message":{"role":"assistant","content":[
		{"reasoningContent":{"reasoningText":{"text":"Need weather.","signature":"sig"}}},{"text":"Checking \"SF\"."},
		{"toolUse":{"toolUseId":"tooluse_A","name":"get_weather","input":{"location":"SF"}}}]}},
		"stopReason":"tool_use","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":72,"cacheReadInputTokens":20,"cacheWriteInputTokens":10},"metrics":{"latencyMs":321}}`), 9)
	require.JSONEq(t, `{"id":"bedrock","object":"chat.completion","created":1700000000,"model":"claude",
		"choices":[{"index":0,"message":{"role":"assistant","content":"Checking \"SF\".","reasoning_content":"Need weather.",
		  "tool_calls":[{"id":"tooluse_A","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
		"usage":{"prompt_tokens":60,"completion_tokens":12,"total_tokens":72,"prompt_tokens_details":{"cached_tokens":20}}}`, string(out))
	u, ok := tr.Usage()
	require.True(t, ok)
	require.Equal(t, Usage{InputTokens: 60, CachedInputTokens: 20, OutputTokens: 12, TotalTokens: 72}, u)
	require.Equal(t, uint64(10), tr.CacheCreationInputTokens())
	mu, ok := ParseUsage(out)
	require.True(t, ok)
	require.Equal(t, u, mu)
}

func TestBedrockErrors(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      string
		typ, code string
	}{
		{400, `{"message":"Malformed input request: extraneous key [foo]"}`, invalidRequest, "validation_error"},
		{429, `{"message":"Too many requests, please wait before trying again."}`, "requests", "rate_limit_exceeded"},
		{403, `{"Message":"The security token included in the request is invalid."}`, invalidRequest, "permission_denied"},
		{503, `<html>`, "server_error", ""},
	} {
		tr, _ := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
		startBedrock(t, tr, false, tc.status, "application/json")
		out := translateAll(tr, []byte(tc.body), 4)
		e := tr.TranslateError(tc.status, []byte(tc.body))
		require.Equal(t, string(e.Body()), string(out))
		require.Equal(t, tc.typ, e.Type, tc.body)
		require.Equal(t, tc.code, e.Code, tc.body)
	}
}

// bedrockEvent encodes one event-stream message with the SDK's encoder.
func bedrockEvent(t testing.TB, msgType, name, payload string) []byte {
	var buf bytes.Buffer
	var h eventstream.Headers
	h.Set(":message-type", eventstream.StringValue(msgType))
	if msgType == "event" {
		h.Set(":event-type", eventstream.StringValue(name))
	} else {
		h.Set(":exception-type", eventstream.StringValue(name))
	}
	h.Set(":content-type", eventstream.StringValue("application/json"))
	require.NoError(t, eventstream.NewEncoder().Encode(&buf, eventstream.Message{Headers: h, Payload: []byte(payload)}))
	return buf.Bytes()
}

func bedrockStreamBody(t testing.TB) []byte {
	var b []byte
	for _, ev := range [][2]string{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Hmm."}}}`},
		{"contentBlockDelta", `{"contentBlockIndex":1,"delta":{"text":"Let me \"check\"."}}`},
		{"contentBlockStop", `{"contentBlockIndex":1}`},
		{"contentBlockStart", `{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_Z","name":"get_weather"}}}`},
		{"contentBlockDelta", `{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"loc"}}}`},
		{"contentBlockDelta", `{"contentBlockIndex":2,"delta":{"toolUse":{"input":"ation\":\"SF\"}"}}}`},
		{"contentBlockStop", `{"contentBlockIndex":2}`},
		{"messageStop", `{"stopReason":"tool_use"}`},
		{"metadata", `{"usage":{"inputTokens":25,"outputTokens":40,"totalTokens":65},"metrics":{"latencyMs":900}}`},
	} {
		b = append(b, bedrockEvent(t, "event", ev[0], ev[1])...)
	}
	return b
}

func TestBedrockStream(t *testing.T) {
	const head = `{"id":"bedrock","object":"chat.completion.chunk","created":1700000000,"model":"claude",`
	chunk := func(delta, finish string) string {
		return head + `"choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]}`
	}
	want := []string{
		chunk(`{"role":"assistant","content":""}`, "null"),
		chunk(`{"reasoning_content":"Hmm."}`, "null"),
		chunk(`{"content":"Let me \"check\"."}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"id":"tooluse_Z","type":"function","function":{"name":"get_weather","arguments":""}}]}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"ation\":\"SF\"}"}}]}`, "null"),
		chunk(`{}`, `"tool_calls"`),
		head + `"choices":[],"usage":{"prompt_tokens":25,"completion_tokens":40,"total_tokens":65,"prompt_tokens_details":{"cached_tokens":0}}}`,
		"[DONE]",
	}
	body := bedrockStreamBody(t)
	for _, n := range []int{0, 1, 3, 5, 17, 100} {
		tr, _ := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
		startBedrock(t, tr, true, 200, "application/vnd.amazon.eventstream")
		require.Equal(t, want, streamEvents(t, translateAll(tr, body, n)), "pieces of %d", n)
		u, ok := tr.Usage()
		require.True(t, ok)
		require.Equal(t, uint64(65), u.TotalTokens)
	}
}

func TestBedrockStreamEdges(t *testing.T) {
	good := bedrockStreamBody(t)
	corrupt := append([]byte(nil), good...)
	corrupt[20] ^= 0xff // inside the first message: its CRC fails
	for _, tc := range []struct {
		name string
		in   []byte
		last string
	}{
		{"cut before messageStop", good[:len(good)/2],
			`{"error":{"message":"the Bedrock stream ended before messageStop","type":"server_error","param":null,"code":""}}`},
		{"exception", append(bedrockEvent(t, "event", "messageStart", `{"role":"assistant"}`), bedrockEvent(t, "exception", "throttlingException", `{"message":"Too many tokens"}`)...),
			`{"error":{"message":"throttlingException: Too many tokens","type":"requests","param":null,"code":"rate_limit_exceeded"}}`},
		{"corrupt CRC", corrupt, ""},
		{"huge length", []byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ""},
		{"payload not JSON", bedrockEvent(t, "event", "messageStart", `{nope`),
			`{"error":{"message":"the Bedrock backend sent an event whose payload is not JSON","type":"server_error","param":null,"code":""}}`},
		{"no metadata after messageStop", append(bedrockEvent(t, "event", "messageStart", `{}`), bedrockEvent(t, "event", "messageStop", `{"stopReason":"end_turn"}`)...), "[DONE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
			startBedrock(t, tr, true, 200, "application/vnd.amazon.eventstream")
			got := streamEvents(t, translateAll(tr, tc.in, 7))
			last := got[len(got)-1]
			if tc.last == "" {
				require.Contains(t, last, `"error"`)
				return
			}
			require.Equal(t, tc.last, last)
		})
	}
}
