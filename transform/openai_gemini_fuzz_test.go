package transform

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// FuzzTranslateGeminiStream checks the Gemini SSE translation of any byte
// stream as FuzzTranslateAnthropicStream does the Anthropic one.
func FuzzTranslateGeminiStream(f *testing.F) {
	f.Add([]byte(geminiStreamBody), uint16(10), uint16(300))
	for _, s := range []string{
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":[]}}]},\"finishReason\":\"WEIRD\"}]}\r\rdata: {}\r\r",
		"data: {\"promptFeedback\":{\"blockReason\":1}}\n\ndata: {\"candidates\":[{\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":18446744073709551615,\"toolUsePromptTokenCount\":18446744073709551615}}\n\n",
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\",\"thought\":true}]}}]\ndata: ,\"x\":1}\n\n: c\n",
		"data: {\"error\":{\"message\":\"m\"}}\n\ndata: {\"candidates\":[{\"finishReason\":\"STOP\"}]}\n\n",
	} {
		f.Add([]byte(s), uint16(3), uint16(40))
	}
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint16) {
		checkStreamTranslation(t, stream, a, b, func(t *testing.T, reuse Translator) Translator {
			tr := geminiFor(t, `{"schema":"gemini"}`)
			if reuse != nil {
				tr = renewed(reuse).(*geminiTranslator)
			}
			startGemini(t, tr, true, 200, "text/event-stream")
			return tr
		})
	})
}

// FuzzTranslateGeminiRequest checks the request translation of any body:
// no panic; either an OpenAI-shaped 400, or a body that is valid JSON with
// turns of user and model holding parts, non-empty system texts, and a
// content-length and path that match.
func FuzzTranslateGeminiRequest(f *testing.F) {
	addFixtures(f, "openai/requests/chat*.json", func(b []byte) { f.Add(b) })
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1]}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"stop":["a"],"max_tokens":5,"temperature":1,"stream":true}`,
		`{"model":"m/../x?y","messages":[{"role":"user","content":"\u0000\ud800"}],"max_completion_tokens":9223372036854775807,"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`,
		`{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":""}]},{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr := geminiFor(t, `{"schema":"gemini"}`)
		out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: body})
		requireReusedRequestAlike(t, tr, body, out, err)
		if err != nil {
			e := err.(*Error)
			require.Equal(t, 400, e.Status)
			require.True(t, json.Valid(e.Body()))
			return
		}
		require.True(t, json.Valid(out.Body), "%s\n→ %s", body, out.Body)
		got := gjson.ParseBytes(out.Body)
		for _, m := range got.Get("contents").Array() {
			role := m.Get("role").Str
			require.True(t, role == "user" || role == "model", role)
			require.NotEmpty(t, m.Get("parts").Array(), "%s", m.Raw)
		}
		for _, p := range got.Get("systemInstruction.parts").Array() {
			require.NotEmpty(t, p.Get("text").Str)
		}
		h := map[string]string{}
		applyHeaders(h, out.Headers)
		require.Equal(t, itoa(len(out.Body)), h["content-length"])
		path := h[":path"]
		require.Regexp(t, `^/v1beta/models/[A-Za-z0-9%._~-]+:(generateContent|streamGenerateContent\?alt=sse)$`, path)
		require.Equal(t, gjson.GetBytes(body, "stream").Type == gjson.True, bytes.Contains([]byte(path), []byte("stream")))
		require.False(t, bytes.Contains(out.Body, []byte(testKey)))
	})
}
