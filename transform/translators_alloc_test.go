//go:build !race

// The race detector's instrumentation allocates where a normal build does
// not: allocation counts are checked without it.

package transform

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// staticSigner signs with fixed headers, allocating nothing.
type staticSigner struct{}

var staticSignature = []HeaderEdit{{Name: "authorization", Value: "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=abc"}, {Name: "x-amz-date", Value: "20231114T221320Z"}}

func (staticSigner) Sign(string, string, string, []byte, time.Time) ([]HeaderEdit, error) {
	return staticSignature, nil
}

// A reused provider translator makes no allocation for a whole exchange
// (a request, and a JSON answer with usage, or a stream) once its buffers
// grew: they are kept. After an exchange over maxKeptBuffer they are made
// again (not pinned), and the next exchange allocates no more.
func TestTranslatorsReuseAllocatesNothing(t *testing.T) {
	req := []byte(`{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi \u00e9 there"}],"max_tokens":64}`)
	streamReq := []byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	for _, tc := range []struct {
		name   string
		b      *Backend
		req    []byte
		ct     string
		answer []byte
	}{
		{"anthropic", mustBackend(t, `{"schema":"anthropic"}`, testKey), req, "application/json", readFixture(t, "anthropic/message_tools.json")},
		{"anthropic stream", mustBackend(t, `{"schema":"anthropic"}`, testKey), streamReq, "text/event-stream", readFixture(t, "anthropic/stream_tools.sse")},
		{"gemini", mustBackend(t, `{"schema":"gemini"}`, testKey), req, "application/json", []byte(geminiToolResponse)},
		{"gemini stream", mustBackend(t, `{"schema":"gemini"}`, testKey), streamReq, "text/event-stream", []byte(geminiStreamBody)},
		{"vertex_ai", mustBackend(t, `{"schema":"vertex_ai","project":"p","location":"us-central1"}`, testKey), req, "application/json", []byte(geminiToolResponse)},
		{"bedrock", mustBackend(t, `{"schema":"aws_bedrock","region":"us-east-1"}`, "").WithSigner(staticSigner{}), req, "application/json",
			[]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"Hi."},{"reasoningContent":{"reasoningText":{"text":"hm"}}}]}},"stopReason":"end_turn","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":42}}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts Translators
			dst := make([]byte, 0, 64<<10)
			exchange := func(req, answer []byte) {
				tr := ts.For(tc.b)
				if _, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: req}); err != nil {
					panic(err)
				}
				if _, err := tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: tc.ct}); err != nil {
					panic(err)
				}
				half := len(answer) / 2 // two chunks: a stream holds a line across them
				out, _ := tr.TranslateResponseBody(dst[:0], answer[:half], false)
				out, _ = tr.TranslateResponseBody(out, answer[half:], true)
				if _, ok := tr.Usage(); !ok || bytes.Contains(out, []byte(`"error"`)) {
					panic("no usage: " + string(out))
				}
			}
			exchange(tc.req, tc.answer)
			require.Zero(t, testing.AllocsPerRun(50, func() { exchange(tc.req, tc.answer) }))
			big := exchangeCase{ct: tc.ct, body: tc.answer, stream: tc.ct == "text/event-stream"}.bigger()
			exchange([]byte(big.req), big.body)
			exchange(tc.req, tc.answer)
			require.Zero(t, testing.AllocsPerRun(50, func() { exchange(tc.req, tc.answer) }), "after a large exchange")
		})
	}
}
