package transform

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// FuzzTranslateAnthropicStream checks the SSE translation of any byte
// stream: no panic; the same output however the stream is split; every
// event out is one data line holding JSON (or [DONE]); the stream ends with
// [DONE] or an error event, and nothing follows either.
func FuzzTranslateAnthropicStream(f *testing.F) {
	addFixtures(f, "anthropic/*.sse", func(b []byte) { f.Add(b, uint16(10), uint16(300)) })
	for _, s := range []string{
		"data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\r\n\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
		"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"a\":1}}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"\"}}\n\n",
		"data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
		"data: {\"type\":\"content_block_delta\",\n\ndata: x\ndata: y\n\n: c\rdata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"weird\"},\"usage\":{\"output_tokens\":-1}}\r",
		"data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":18446744073709551615,\"cache_read_input_tokens\":18446744073709551615,\"output_tokens\":18446744073709551615}}\n\n",
	} {
		f.Add([]byte(s), uint16(3), uint16(40))
	}
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint16) {
		checkStreamTranslation(t, stream, a, b, func(t *testing.T) Translator {
			tr := anthropicFor(t, `{"schema":"anthropic"}`)
			startAnthropic(t, tr, true, 200, "text/event-stream")
			return tr
		})
	})
}

// checkStreamTranslation checks a translator's SSE translation of stream:
// the same output however the stream is split (at a and b); every event out
// is one data line holding JSON (or [DONE]); the stream ends with [DONE] or
// an error event, and nothing follows either. start makes a translator
// past its response headers.
func checkStreamTranslation(t *testing.T, stream []byte, a, b uint16, start func(*testing.T) Translator) {
	whole := fuzzStream(start(t), [][]byte{stream})
	i, j := int(a)%(len(stream)+1), int(b)%(len(stream)+1)
	if i > j {
		i, j = j, i
	}
	split := fuzzStream(start(t), [][]byte{stream[:i], stream[i:j], stream[j:]})
	require.Equal(t, string(whole), string(split))
	events := strings.Split(string(whole), "\n\n")
	require.Equal(t, "", events[len(events)-1], "output ends with a blank line")
	events = events[:len(events)-1]
	require.NotEmpty(t, events)
	for k, ev := range events {
		data, ok := strings.CutPrefix(ev, "data: ")
		require.True(t, ok, ev)
		require.NotContains(t, data, "\n")
		require.NotContains(t, data, "\r")
		last := k == len(events)-1
		if data == "[DONE]" {
			require.True(t, last, "nothing after [DONE]")
			continue
		}
		require.True(t, json.Valid([]byte(data)), data)
		if gjson.Get(data, "error").Exists() {
			require.True(t, last, "nothing after an error event")
			continue
		}
		require.False(t, last, "a stream ends with [DONE] or an error")
		require.Equal(t, "chat.completion.chunk", gjson.Get(data, "object").Str)
	}
}

func fuzzStream(tr Translator, parts [][]byte) []byte {
	var out []byte
	for k, p := range parts {
		out, _ = tr.TranslateResponseBody(out, p, k == len(parts)-1)
	}
	return out
}

// FuzzTranslateAnthropicRequest checks the request translation of any
// body: no panic; either an OpenAI-shaped 400, or a body that is valid JSON
// with the model, a positive max_tokens, the stream flag and a
// content-length that match, turns of user and assistant with content, and
// non-empty system texts. (sdktest decodes the corpus found here with the
// Anthropic SDK; linking the SDK here would make every fuzz build of this
// package instrument it.)
func FuzzTranslateAnthropicRequest(f *testing.F) {
	addFixtures(f, "openai/requests/chat*.json", func(b []byte) { f.Add(b) })
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1]}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false,"stop":["a"],"max_tokens":5,"temperature":1,"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":"\u0000\ud800"}],"max_completion_tokens":9223372036854775807,"user":"u"}`,
		`{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":""}]},{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr := anthropicFor(t, `{"schema":"anthropic","maxTokens":77}`)
		out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: body})
		if err != nil {
			e := err.(*Error)
			require.Equal(t, 400, e.Status)
			require.True(t, json.Valid(e.Body()))
			return
		}
		require.True(t, json.Valid(out.Body), "%s\n→ %s", body, out.Body)
		in, got := gjson.ParseBytes(body), gjson.ParseBytes(out.Body)
		require.Equal(t, in.Get("model").Str, got.Get("model").Str)
		require.True(t, positiveInteger(got.Get("max_tokens").Raw), got.Get("max_tokens").Raw)
		require.Equal(t, in.Get("stream").Type == gjson.True, got.Get("stream").Bool())
		for _, m := range got.Get("messages").Array() {
			role := m.Get("role").Str
			require.True(t, role == "user" || role == "assistant", role)
			c := m.Get("content")
			require.True(t, c.Type == gjson.String || c.IsArray() && len(c.Array()) > 0, "%s", m.Raw)
		}
		for _, b := range got.Get("system").Array() {
			require.Equal(t, "text", b.Get("type").Str)
			require.NotEmpty(t, b.Get("text").Str)
		}
		h := map[string]string{}
		applyHeaders(h, out.Headers)
		require.Equal(t, itoa(len(out.Body)), h["content-length"])
		require.False(t, bytes.Contains(out.Body, []byte(testKey)))
	})
}
