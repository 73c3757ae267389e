package transform

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// FuzzTranslateBedrockStream checks the event-stream translation of any
// bytes as FuzzTranslateAnthropicStream does the SSE ones: the same output
// however the body is split, JSON events only, ending in [DONE] or an
// error.
func FuzzTranslateBedrockStream(f *testing.F) {
	f.Add(bedrockStreamBody(f), uint16(10), uint16(300))
	f.Add(append(bedrockEvent(f, "event", "messageStart", `{}`), bedrockEvent(f, "exception", "validationException", `{"message":"m"}`)...), uint16(3), uint16(40))
	f.Add(append(bedrockEvent(f, "event", "contentBlockStart", `{"contentBlockIndex":9999999,"start":{"toolUse":{}}}`), bedrockEvent(f, "event", "metadata", `{"usage":{"inputTokens":18446744073709551615,"cacheReadInputTokens":18446744073709551615}}`)...), uint16(5), uint16(60))
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint16(1), uint16(2))
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint16) {
		checkStreamTranslation(t, stream, a, b, func(t *testing.T, reuse Translator) Translator {
			tr, _ := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
			if reuse != nil {
				tr = renewed(reuse).(*bedrockTranslator)
			}
			startBedrock(t, tr, true, 200, "application/vnd.amazon.eventstream")
			return tr
		})
	})
}

// FuzzTranslateBedrockRequest checks the request translation of any body:
// an OpenAI-shaped 400, or a valid Converse body, signed as sent.
func FuzzTranslateBedrockRequest(f *testing.F) {
	addFixtures(f, "openai/requests/chat*.json", func(b []byte) { f.Add(b) })
	f.Add([]byte(`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1]}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","stop":"a","max_tokens":5,"stream":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, s := bedrockFor(t, `{"schema":"aws_bedrock","region":"us-east-1"}`)
		out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: body})
		requireReusedRequestAlike(t, tr, body, out, err)
		if err != nil {
			e := err.(*Error)
			require.Equal(t, 400, e.Status)
			require.True(t, json.Valid(e.Body()))
			return
		}
		require.True(t, json.Valid(out.Body), "%s\n→ %s", body, out.Body)
		require.Equal(t, out.Body, s.body)
		for _, m := range gjson.GetBytes(out.Body, "messages").Array() {
			role := m.Get("role").Str
			require.True(t, role == "user" || role == "assistant", role)
			require.NotEmpty(t, m.Get("content").Array(), "%s", m.Raw)
		}
		h := map[string]string{}
		applyHeaders(h, out.Headers)
		require.Equal(t, itoa(len(out.Body)), h["content-length"])
		require.Regexp(t, `^/model/[A-Za-z0-9%._~-]+/converse(-stream)?$`, h[":path"])
		require.Equal(t, s.path, h[":path"])
	})
}
