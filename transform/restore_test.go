package transform

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// restoreAll runs a restorer over chunks and returns what the client gets.
func restoreAll(model, contentType string, chunks ...[]byte) []byte {
	r := NewModelRestorer(model, contentType)
	var out []byte
	for _, c := range chunks {
		var changed bool
		before := len(out)
		out, changed = r.Write(out, c)
		if !changed && string(out[before:]) != string(c) {
			panic("unchanged chunk forwarded differently")
		}
	}
	return out
}

// replaceModels computes the expected output independently of the walker: in
// a JSON document (one per SSE data line), the string values at the paths
// "model" and "response.model" become model.
func replaceModels(doc []byte, model string) []byte {
	type hit struct{ at, end int }
	var hits []hit
	for _, path := range []string{"model", "response.model"} {
		if v := gjson.GetBytes(doc, path); v.Type == gjson.String {
			hits = append(hits, hit{v.Index, v.Index + len(v.Raw)})
		}
	}
	if len(hits) == 2 && hits[1].at < hits[0].at {
		hits[0], hits[1] = hits[1], hits[0]
	}
	var out []byte
	last := 0
	for _, h := range hits {
		out = append(out, doc[last:h.at]...)
		out = gjson.AppendJSONString(out, model)
		last = h.end
	}
	return append(out, doc[last:]...)
}

func expectedSSE(stream []byte, model string) []byte {
	var out []byte
	for len(stream) > 0 {
		end := lineEnd(stream)
		if end < 0 {
			end = len(stream) - 1
		}
		line := stream[:end+1]
		if rest, ok := bytes.CutPrefix(line, []byte("data:")); ok && gjson.ValidBytes(bytes.TrimSpace(rest)) {
			out = append(out, "data:"...)
			out = append(out, replaceModels(rest, model)...)
		} else {
			out = append(out, line...)
		}
		stream = stream[end+1:]
	}
	return out
}

// requireRestoredAnySplit checks that body restored to model gives want
// whole, byte by byte and split in two at every point.
func requireRestoredAnySplit(t *testing.T, model, contentType string, body, want []byte) {
	t.Helper()
	require.Equal(t, string(want), string(restoreAll(model, contentType, body)), "whole")
	require.Equal(t, string(want), string(restoreAll(model, contentType, bytesOf(body)...)), "byte by byte")
	for i := range body {
		require.Equal(t, string(want), string(restoreAll(model, contentType, body[:i], body[i:])), "split at %d", i)
	}
}

func TestModelRestorerJSON(t *testing.T) {
	for _, f := range []string{
		"openai/chat_completion.json", "openai/chat_completion_usage_first.json", "openai/responses.json",
		"openai/embeddings.json", "sim/chat.json", "sim/completions.json",
	} {
		t.Run(f, func(t *testing.T) {
			body := readFixture(t, f)
			want := replaceModels(body, `client "alias" ü`)
			require.NotEqual(t, body, want)
			require.Equal(t, `client "alias" ü`, gjson.GetBytes(want, "model").Str)
			requireRestoredAnySplit(t, `client "alias" ü`, "application/json", body, want)
		})
	}
}

func TestModelRestorerSSE(t *testing.T) {
	for _, f := range []string{
		"sim/chat_stream.sse", "sim/completions_stream.sse", "sim/responses_stream.sse",
		"openai/chat_stream_multibyte.sse", "openai/chat_stream_reasoning_crlf.sse", "openai/responses_stream.sse",
	} {
		t.Run(f, func(t *testing.T) {
			body := readFixture(t, f)
			want := expectedSSE(body, "alias")
			require.NotEqual(t, body, want)
			requireRestoredAnySplit(t, "alias", "text/event-stream", body, want)
			// The stream the meter sees after restoring names the client's model.
			r := meterChunks(EndpointChatCompletions, "text/event-stream", "", want)
			require.Equal(t, "alias", r.Model)
		})
	}
}

func TestModelRestorerNeverHoldsBack(t *testing.T) {
	// Whatever the split, each chunk's output is everything of it but the
	// server's model name: no byte waits for a later chunk.
	body := []byte(`data: {"id":"x","model":"server-model-name","choices":[]}` + "\n\n")
	for i := 1; i < len(body); i++ {
		r := NewModelRestorer("m", "text/event-stream")
		in1 := body[:i]
		out1, _ := r.Write(nil, in1)
		nameStart := bytes.Index(body, []byte(`"server`))
		nameEnd := nameStart + len(`"server-model-name"`)
		switch {
		case i <= nameStart:
			require.Equal(t, string(in1), string(out1))
		default: // the client's name is out as soon as the opening quote is
			require.Equal(t, string(body[:nameStart])+`"m"`+string(body[min(i, nameEnd):i]), string(out1), "split at %d", i)
		}
	}
}

func TestModelRestorerLeavesOthersAlone(t *testing.T) {
	tests := []struct{ name, contentType, in string }{
		{"non-string model", "application/json", `{"model":null,"x":{"model":"nested"}}`},
		{"model in a string", "application/json", `{"content":"\"model\":\"x\""}`},
		{"escaped key", "application/json", `{"mod\u0065l":"x"}`},
		{"not a data line", "text/event-stream", "event: {\"model\":\"x\"}\nid: {\"model\":\"x\"}\n\n"},
		{"array document", "application/json", `[{"model":"x"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewModelRestorer("alias", tt.contentType)
			out, changed := r.Write([]byte("prefix"), []byte(tt.in))
			require.False(t, changed)
			require.Equal(t, "prefix"+tt.in, string(out))
		})
	}
}

func TestModelRestorerSeveralChunksIntoOneBuffer(t *testing.T) {
	// As the module forwards a body of several slices: the unchanged ones
	// must be in the output too.
	body := readFixture(t, "sim/chat_stream.sse")
	want := expectedSSE(body, "alias")
	cut := bytes.Index(body, []byte("\n\n")) + 2 // the first event, then a chunk inside the second event before its model
	r := NewModelRestorer("alias", "text/event-stream")
	out, changed := r.Write(nil, body[:cut])
	require.True(t, changed)
	out, changed = r.Write(out, body[cut:cut+10])
	require.False(t, changed)
	out, _ = r.Write(out, body[cut+10:])
	require.Equal(t, string(want), string(out))
}

func TestModelRestorerBrokenLine(t *testing.T) {
	// A data line cut inside the model name does not swallow the next line.
	in := "data: {\"model\":\"cut\n\ndata: {\"model\":\"x\"}\n\n"
	got := restoreAll("alias", "text/event-stream", []byte(in))
	require.Equal(t, "data: {\"model\":\"alias\"\n\ndata: {\"model\":\"alias\"}\n\n", string(got))
}
