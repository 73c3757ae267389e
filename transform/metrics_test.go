package transform

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEndpoints(t *testing.T) {
	tests := []struct {
		path string
		ep   Endpoint
		op   string
	}{
		{"/v1/chat/completions", EndpointChatCompletions, "chat"},
		{"/v1/completions", EndpointCompletions, "text_completion"},
		{"/v1/embeddings", EndpointEmbeddings, "embeddings"},
		{"/v1/responses", EndpointResponses, "responses"},
		{"/v1/models", EndpointModels, "list_models"},
		{"/v1/messages", EndpointMessages, "messages"},
		{"/score", EndpointScore, "score"},
		{"/rerank", EndpointRerank, "rerank"},
		{"/classify", EndpointClassify, "classify"},
		{"/pooling", EndpointPooling, "pooling"},
		{"/tokenize", EndpointTokenize, "tokenize"},
		{"/detokenize", EndpointDetokenize, "detokenize"},
		{"/invocations", EndpointInvocations, "invocations"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			require.Equal(t, tt.ep, EndpointOf(tt.path))
			require.Equal(t, tt.ep, EndpointOf(tt.path+"?a=b"))
			require.Equal(t, tt.path, tt.ep.String())
			require.Equal(t, tt.op, tt.ep.Operation())
		})
	}
	for p, ep := range map[string]Endpoint{"/v1/score": EndpointScore, "/v1/rerank": EndpointRerank, "/v2/rerank": EndpointRerank,
		"/v1/tokenize": EndpointTokenize, "/v1/detokenize": EndpointDetokenize, "/v1/chat/completions/": EndpointChatCompletions} {
		require.Equal(t, ep, EndpointOf(p), p)
	}
	for _, p := range []string{"", "/", "/V1/models", "/v1/chat", "/openai/v1/chat/completions", "/generate", "/v1/audio/transcriptions"} {
		require.Equal(t, EndpointNone, EndpointOf(p), p)
	}
	require.Equal(t, "", EndpointNone.Operation())
}

func TestTiming(t *testing.T) {
	start := t0
	end := t0.Add(2 * time.Second)
	tests := []struct {
		name string
		r    Report
		want Timing
	}{
		{"unstreamed", Report{Status: 200, HasUsage: true, Usage: Usage{OutputTokens: 10}},
			Timing{Duration: 2 * time.Second}},
		{"stream with usage", Report{Status: 200, Streamed: true, FirstContent: t0.Add(200 * time.Millisecond), HasUsage: true, Usage: Usage{OutputTokens: 10}},
			Timing{Duration: 2 * time.Second, TimeToFirstToken: 200 * time.Millisecond, HasTTFT: true, TimePerOutputToken: 200 * time.Millisecond, HasTPOT: true}},
		{"stream without usage counts events", Report{Status: 200, Streamed: true, FirstContent: t0.Add(time.Second), ContentEvents: 5},
			Timing{Duration: 2 * time.Second, TimeToFirstToken: time.Second, HasTTFT: true, TimePerOutputToken: 250 * time.Millisecond, HasTPOT: true}},
		{"one token", Report{Status: 200, Streamed: true, FirstContent: t0.Add(time.Second), ContentEvents: 1},
			Timing{Duration: 2 * time.Second, TimeToFirstToken: time.Second, HasTTFT: true}},
		{"stream without content", Report{Status: 200, Streamed: true},
			Timing{Duration: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.r.Timing(start, end))
		})
	}
}

func TestMetricModel(t *testing.T) {
	c := mustParse(t, `{"models":[{"name":"listed"},{"name":"alias"}],"rewrites":[{"model":"alias","targets":[{"model":"target"}]}]}`)
	for name, want := range map[string]string{"listed": "listed", "alias": "alias", "target": "target",
		"random-7f3a": OtherModel, "": OtherModel, "_OTHER": OtherModel} {
		require.Equal(t, want, c.MetricModel(name), name)
	}
	open := mustParse(t, `{"rewrites":[{"targets":[{"model":"catch-all-target"}]}]}`)
	require.Equal(t, "catch-all-target", open.MetricModel("catch-all-target"))
	require.Equal(t, OtherModel, open.MetricModel("anything"))
}

func TestErrorType(t *testing.T) {
	require.Equal(t, "", Report{Status: 200}.ErrorType())
	require.Equal(t, "", Report{Status: 204}.ErrorType())
	require.Equal(t, "503", Report{Status: 503}.ErrorType())
	require.Equal(t, "404", Report{Status: 404}.ErrorType())
	require.Equal(t, "_OTHER", Report{Status: 200, StreamError: true}.ErrorType())
}

func TestUsageCounts(t *testing.T) {
	u := Usage{InputTokens: 1, CachedInputTokens: 2, OutputTokens: 3, ReasoningTokens: 4, TotalTokens: 4}
	require.Equal(t, [4]TokenCount{{"input", 1}, {"output", 3}, {"cached_input", 2}, {"reasoning", 4}}, u.Counts())
}

func TestCountRejectsOddNumbers(t *testing.T) {
	u, ok := ParseUsage([]byte(`{"usage":{"prompt_tokens":-4,"completion_tokens":"7","total_tokens":2.5}}`))
	require.True(t, ok)
	require.Equal(t, Usage{TotalTokens: 2}, u)
}
