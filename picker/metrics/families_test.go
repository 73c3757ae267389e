package metrics

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilteredPath(t *testing.T) {
	vllm, err := ForEngine(EngineVLLM)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, path, prefix string
	}{
		{"plain path", "/metrics", "/metrics?"},
		{"a path with a query keeps it", "/metrics?x=1", "/metrics?x=1&"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := vllm.FilteredPath(tc.path)
			require.True(t, strings.HasPrefix(got, tc.prefix), got)
			u, err := url.Parse(got)
			require.NoError(t, err)
			require.ElementsMatch(t, vllm.Families(), u.Query()["name[]"], "every family the parser reads, decoded as a server decodes it")
			require.NotContains(t, got, " ")
		})
	}
	require.Equal(t, "/metrics", (&Names{}).FilteredPath("/metrics"), "nothing named: nothing asked")
	require.Contains(t, vllm.Families(), "vllm:gpu_cache_usage_perc", "the fallback too")
}
