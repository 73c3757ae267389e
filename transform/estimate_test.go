package transform

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEstimateTokens(t *testing.T) {
	for n, want := range map[int]uint64{-1: 0, 0: 0, 1: 1, 4: 1, 5: 2, 4096: 1024} {
		require.Equal(t, want, EstimateTokens(n), "%d bytes", n)
	}
}

func TestEstimateOf(t *testing.T) {
	c, err := Parse([]byte(`{"defaultMaxTokens": 100}`))
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		d    Decision
		want Estimate
	}{
		{"max_tokens", Decision{Endpoint: EndpointChatCompletions, MaxTokens: 7}, Estimate{10, 7}},
		{"no max_tokens: the configured default", Decision{Endpoint: EndpointCompletions}, Estimate{10, 100}},
		{"embeddings generate nothing", Decision{Endpoint: EndpointEmbeddings, MaxTokens: 7}, Estimate{10, 0}},
		{"rerank generates nothing", Decision{Endpoint: EndpointRerank}, Estimate{10, 0}},
		{"messages", Decision{Endpoint: EndpointMessages, MaxTokens: 3}, Estimate{10, 3}},
		{"tokenize runs no model", Decision{Endpoint: EndpointTokenize}, Estimate{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, c.EstimateOf(&tt.d, 40))
		})
	}
	c, err = Parse(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(4096), c.DefaultMaxTokens)
	_, err = Parse([]byte(`{"defaultMaxTokens": 10000001}`))
	require.EqualError(t, err, "defaultMaxTokens: must be at most 10000000")
	_, err = Parse([]byte(`{"defaultMaxTokens": -1}`))
	require.ErrorContains(t, err, "defaultMaxTokens")
}

func TestMaxTokensParsed(t *testing.T) {
	for body, want := range map[string]uint64{
		`{"model":"m","prompt":"p"}`:                                            0,
		`{"model":"m","prompt":"p","max_tokens":12}`:                            12,
		`{"model":"m","prompt":"p","max_completion_tokens":30,"max_tokens":12}`: 30,
		`{"model":"m","prompt":"p","max_output_tokens":5}`:                      5,
		`{"model":"m","prompt":"p","max_tokens":-3}`:                            0,
		`{"model":"m","prompt":"p","max_tokens":"9"}`:                           0,
	} {
		r, err := ParseRequest(EndpointCompletions, []byte(body))
		require.NoError(t, err)
		require.Equal(t, want, r.MaxTokens, body)
	}
	c, _ := Parse(nil)
	d, err := c.Decide(EndpointChatCompletions, []byte(`{"model":"m","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"x"}]}`), "")
	require.NoError(t, err)
	require.Equal(t, uint64(9), d.MaxTokens)
	require.True(t, d.UsageInjected)
	d, err = c.Decide(EndpointChatCompletions, []byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`), "")
	require.NoError(t, err)
	require.False(t, d.UsageInjected, "the client asked for it")
}

func TestChargeOf(t *testing.T) {
	e := Estimate{InputTokens: 10, OutputTokens: 100}
	counted := Usage{InputTokens: 3, OutputTokens: 4, TotalTokens: 7}
	free := Estimate{}
	require.Equal(t, Charge{}, ChargeOf(nil, free), "tokenize: nothing")
	require.Equal(t, Charge{}, ChargeOf(&Report{Status: 200}, free))
	require.Equal(t, Charge{Usage{1, 0, 0, 0, 1}, UsageCounted, true}, ChargeOf(&Report{Status: 200, HasUsage: true, Usage: Usage{InputTokens: 1, TotalTokens: 1}}, free))
	for _, tt := range []struct {
		name string
		r    *Report
		want Charge
	}{
		{"no response: the prompt", nil, Charge{Usage{10, 0, 0, 0, 10}, UsagePromptOnly, true}},
		{"no status: the prompt", &Report{}, Charge{Usage{10, 0, 0, 0, 10}, UsagePromptOnly, true}},
		{"error status: free", &Report{Status: 503}, Charge{}},
		{"counted", &Report{Status: 200, Usage: counted, HasUsage: true}, Charge{counted, UsageCounted, true}},
		{"counted stream", &Report{Status: 200, Streamed: true, Usage: counted, HasUsage: true, ContentEvents: 50}, Charge{counted, UsageCounted, true}},
		{"cut stream: events", &Report{Status: 200, Streamed: true, ContentEvents: 6, ContentBytes: 8}, Charge{Usage{10, 0, 6, 0, 16}, UsageStreamed, true}},
		{"cut stream: bytes", &Report{Status: 200, Streamed: true, ContentEvents: 2, ContentBytes: 400}, Charge{Usage{10, 0, 100, 0, 110}, UsageStreamed, true}},
		{"cut stream before content", &Report{Status: 200, Streamed: true}, Charge{Usage{10, 0, 0, 0, 10}, UsageStreamed, true}},
		{"gzip stream cut short", &Report{Status: 200, Streamed: true, ContentEvents: 6, Err: fmt.Errorf("gzip body: %w", io.ErrUnexpectedEOF)}, Charge{Usage{10, 0, 6, 0, 16}, UsageStreamed, true}},
		{"unreadable stream", &Report{Status: 200, Streamed: true, Err: errors.New("br")}, Charge{Usage{10, 0, 100, 0, 110}, UsageReserved, true}},
		{"JSON without usage", &Report{Status: 200}, Charge{Usage{10, 0, 100, 0, 110}, UsageReserved, true}},
		{"gzip bomb", &Report{Status: 200, Err: ErrInflateLimit}, Charge{Usage{10, 0, 100, 0, 110}, UsageReserved, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ChargeOf(tt.r, e))
		})
	}
}

func TestMeteredAcceptEncoding(t *testing.T) {
	for _, tt := range []struct {
		in, out string
		change  bool
	}{
		{"", "", false},
		{"gzip", "gzip", false},
		{"identity", "identity", false},
		{"gzip, deflate, br, zstd", "gzip", true},
		{"br;q=1.0, gzip;q=0.8", "gzip", true},
		{"br", "", true},
		{"zstd, br", "", true},
		{"br, gzip;q=0", "", true},
		{"br, GZIP;Q=0.000", "", true},
		{"x-gzip", "gzip", true},
		{"*", "gzip", true},
		{"*;q=0, identity", "", true},
		{"deflate", "", true},
	} {
		out, change := MeteredAcceptEncoding(tt.in)
		require.Equal(t, tt.out, out, tt.in)
		require.Equal(t, tt.change, change, tt.in)
	}
}

// A gzip stream cut short is charged what was streamed, like a plain one.
// (A streaming server flushes its compressor after each event.)
func TestChargeOfCutGzipStream(t *testing.T) {
	body := readFixture(t, "sim/chat_stream.sse")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for ev := range bytes.SplitAfterSeq(body, []byte("\n\n")) {
		_, _ = zw.Write(ev)
		require.NoError(t, zw.Flush())
	}
	require.NoError(t, zw.Close())
	gz := buf.Bytes()
	r := meterChunks(EndpointChatCompletions, "text/event-stream", "gzip", gz[:len(gz)*2/3])
	require.ErrorIs(t, r.Err, io.ErrUnexpectedEOF)
	require.False(t, r.HasUsage)
	require.Positive(t, r.ContentEvents)
	ch := ChargeOf(&r, Estimate{InputTokens: 10, OutputTokens: 100})
	require.Equal(t, UsageStreamed, ch.Source)
	require.Equal(t, max(uint64(r.ContentEvents), EstimateTokens(r.ContentBytes)), ch.Usage.OutputTokens)
}
