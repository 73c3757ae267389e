package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
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
		checkStreamTranslation(t, stream, a, b, func(t *testing.T, reuse Translator) Translator {
			tr := anthropicFor(t, `{"schema":"anthropic"}`)
			if reuse != nil {
				tr = renewed(reuse).(*anthropicTranslator)
			}
			startAnthropic(t, tr, true, 200, "text/event-stream")
			return tr
		})
	})
}

// checkStreamTranslation checks a translator's SSE translation of stream:
// the same output however the stream is split (at a and b); every event out
// is one data line holding JSON (or [DONE]); the stream ends with [DONE] or
// an error event, and nothing follows either. start makes a translator
// past its response headers: a new one, or reuse set for a new exchange.
// The split stream goes through a translator reused after that stream
// cut at b: it must translate as a new one.
func checkStreamTranslation(t *testing.T, stream []byte, a, b uint16, start func(t *testing.T, reuse Translator) Translator) {
	whole := fuzzStream(start(t, nil), [][]byte{stream})
	i, j := int(a)%(len(stream)+1), int(b)%(len(stream)+1)
	if i > j {
		i, j = j, i
	}
	used := start(t, nil)
	used.TranslateResponseBody(nil, stream[:j], false) // cut: no end
	split := fuzzStream(start(t, used), [][]byte{stream[:i], stream[i:j], stream[j:]})
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
		requireReusedRequestAlike(t, tr, body, out, err)
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

// renewed sets tr for a new exchange as Translators.For does (its buffers
// kept), with its backend and clock.
func renewed(tr Translator) Translator {
	switch t := tr.(type) {
	case *anthropicTranslator:
		t.reset(t.backend, t.now)
	case *geminiTranslator:
		t.reset(t.backend, t.now)
	case *bedrockTranslator:
		t.reset(t.backend, t.now)
	default:
		panic("renewed: not a provider translator")
	}
	return tr
}

// earlierRequest is what a reused translator translated before, in
// requireReusedRequestAlike: longer than most bodies a fuzzer makes, a
// stream, with another model.
var earlierRequest = []byte(`{"model":"an-earlier-model","stream":true,"stream_options":{"include_usage":true},"max_tokens":7,` +
	`"messages":[{"role":"system","content":"` + strings.Repeat("be brief ", 200) + `"},{"role":"user","content":"` + strings.Repeat("x\\n", 300) + `"}]}`)

// requireReusedRequestAlike checks that tr, reused (as Translators.For
// does) after an exchange with earlierRequest, translates body as it did
// new (out, err): same error, headers and body. out is tr's memory: it
// is copied first.
func requireReusedRequestAlike(t *testing.T, tr Translator, body []byte, out TranslatedRequest, err error) {
	t.Helper()
	wantHeaders, wantBody := cloneEdits(out.Headers), string(out.Body)
	wantErr := ""
	if err != nil {
		wantErr = err.Error()
	}
	_, _ = renewed(tr).TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: earlierRequest})
	got, gotErr := renewed(tr).TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: body})
	if gotErr != nil || wantErr != "" {
		require.Equal(t, wantErr, fmt.Sprint(gotErr))
		return
	}
	require.Equal(t, wantHeaders, cloneEdits(got.Headers))
	require.Equal(t, wantBody, string(got.Body))
}
