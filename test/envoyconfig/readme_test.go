package envoyconfig

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fleet rate-limit setup shown in README.md is a bootstrap Envoy and the
// library would load.
func TestREADMERateLimitBootstrapValidates(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- ratelimit-bootstrap:start -->")
	require.True(t, ok, "README.md lost its rate limit bootstrap")
	block, _, ok := strings.Cut(rest, "<!-- ratelimit-bootstrap:end -->")
	require.True(t, ok)
	block = strings.TrimSpace(block)
	block = strings.TrimSuffix(strings.TrimPrefix(block, "```yaml"), "```")

	b, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router", "endpoint_picker"}, names(filters))
	route := b.GetStaticResources().GetListeners()[0]
	require.NotNil(t, route)
	require.Contains(t, block, "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%")
	require.Contains(t, string(filters[0].FilterConfig), `"llm_total_token"`)
}
