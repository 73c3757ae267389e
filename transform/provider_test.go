package transform

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBackendProvider(t *testing.T) {
	for config, want := range map[string]string{
		`{"schema":"openai","pathPrefix":"/v1beta/openai"}`:   "openai",
		`{"schema":"azure_openai","apiVersion":"2024-10-21"}`: "azure.openai",
		`{"schema":"anthropic"}`:                              "anthropic",
		`{"schema":"gemini"}`:                                 "gcp.gemini",
		`{"schema":"vertex_ai","project":"p","location":"l"}`: "gcp.vertex_ai",
		`{"schema":"aws_bedrock","region":"us-east-1"}`:       "aws.bedrock",
	} {
		require.Equal(t, want, mustBackend(t, config, "").Provider(), config)
	}
}

// The tag takes only the names ai_upstream writes: any other value in the
// metadata (another filter's) is _OTHER, so stats stay bounded.
func TestMetricProvider(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		want string
	}{
		{"", false, "openai"}, // no ai_upstream: an InferencePool's OpenAI-compatible servers
		{"openai", true, "openai"},
		{"azure.openai", true, "azure.openai"},
		{"anthropic", true, "anthropic"},
		{"gcp.gemini", true, "gcp.gemini"},
		{"gcp.vertex_ai", true, "gcp.vertex_ai"},
		{"aws.bedrock", true, "aws.bedrock"},
		{"", true, "_OTHER"},
		{"Anthropic", true, "_OTHER"},
		{"anthropic ", true, "_OTHER"},
		{"made-up-provider-12345", true, "_OTHER"},
	} {
		require.Equal(t, tc.want, MetricProvider(tc.name, tc.ok), "%q %v", tc.name, tc.ok)
	}
}
