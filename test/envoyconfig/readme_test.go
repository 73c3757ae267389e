package envoyconfig

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readmeBlock returns the YAML block of README.md between the markers
// <!-- name:start --> and <!-- name:end -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- "+name+":start -->")
	require.True(t, ok, "README.md lost its %s", name)
	block, _, ok := strings.Cut(rest, "<!-- "+name+":end -->")
	require.True(t, ok)
	block = strings.TrimSpace(block)
	return strings.TrimSuffix(strings.TrimPrefix(block, "```yaml"), "```")
}

// The fleet rate-limit setup shown in README.md is a bootstrap Envoy and the
// library would load.
func TestREADMERateLimitBootstrapValidates(t *testing.T) {
	block := readmeBlock(t, "ratelimit-bootstrap")
	b, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router", "endpoint_picker"}, names(filters))
	route := b.GetStaticResources().GetListeners()[0]
	require.NotNil(t, route)
	require.Contains(t, block, "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%")
	require.Contains(t, string(filters[0].FilterConfig), `"llm_total_token"`)
}

// The one-pool-per-model setup shown in README.md loads, and the validator
// catches what would break it: a route naming a pool no endpoint_picker has,
// and a per-route config the library refuses.
func TestREADMEPoolsBootstrapValidates(t *testing.T) {
	block := readmeBlock(t, "pools-bootstrap")
	_, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router", "endpoint_picker"}, names(filters))

	for _, tc := range []struct{ name, old, new, wantErr string }{
		{"route names a missing pool", "value: {pool: b}", "value: {pool: c}", `per-route pool "c" is not a pool of any endpoint_picker`},
		{"per-route config without pool", "value: {pool: b}", "value: {}", `"pool" is required`},
		{"per-route unknown field", "value: {pool: b}", "value: {pool: b, weight: 1}", `unknown field "weight"`},
		{"per-route for ai_router without an endpointPicker", "per_route_config_name: endpoint_picker", "per_route_config_name: ai_router", `per-route pool "b" is not a pool of any ai_router's endpointPicker`},
		{"filter_name instead of per_route_config_name", "per_route_config_name: endpoint_picker\n", "filter_name: endpoint_picker\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, block, tc.old, "mutation no longer applies to the README")
			_, _, err := ValidateYAML([]byte(strings.Replace(block, tc.old, tc.new, 1)))
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// The provider-backends bootstrap shown in README.md loads: a pool and
// Anthropic in one cluster at two priorities with ai_upstream, and
// Anthropic's own cluster; a bad ai_upstream config is named.
func TestREADMEProvidersBootstrapValidates(t *testing.T) {
	block := readmeBlock(t, "providers-bootstrap")
	_, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router", "endpoint_picker", "ai_upstream", "ai_upstream"}, names(filters))
	for _, tc := range []struct{ name, old, new, wantErr string }{
		{"unknown backend schema", "schema: anthropic, model", "schema: bedrock, model", `backends[1].schema: unknown schema "bedrock"`},
		{"default names no backend", "defaultBackend: pool", "defaultBackend: vllm", `defaultBackend: "vllm"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, block, tc.old, "mutation no longer applies to the README")
			_, _, err := ValidateYAML([]byte(strings.Replace(block, tc.old, tc.new, 1)))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// The Google bootstrap shown in README.md loads: the Gemini API and Vertex
// AI each behind their own cluster's ai_upstream; Vertex AI without its
// project is refused, naming the field.
func TestREADMEGoogleBootstrapValidates(t *testing.T) {
	block := readmeBlock(t, "google-bootstrap")
	_, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router", "ai_upstream", "ai_upstream"}, names(filters))
	old := "project: my-project, "
	require.Contains(t, block, old)
	_, _, err = ValidateYAML([]byte(strings.Replace(block, old, "", 1)))
	require.ErrorContains(t, err, "backends[0].project: required for schema vertex_ai")
}

// The Bedrock bootstrap shown in README.md loads; a Bedrock backend given an
// apiKeyFile (it signs instead) or a bad region is refused, naming the field.
func TestREADMEBedrockBootstrapValidates(t *testing.T) {
	block := readmeBlock(t, "bedrock-bootstrap")
	_, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router", "ai_upstream"}, names(filters))
	for _, tc := range []struct{ old, new, wantErr string }{
		{"credentialsFile: /etc/secrets/aws/credentials", "apiKeyFile: /k", "backends[0].apiKeyFile: not for schema aws_bedrock"},
		{"region: us-east-1,", "region: us-east-1.example.com,", "backends[0].region"},
	} {
		require.Contains(t, block, tc.old)
		_, _, err := ValidateYAML([]byte(strings.Replace(block, tc.old, tc.new, 1)))
		require.ErrorContains(t, err, tc.wantErr)
	}
}

// The one-filter setup shown in README.md loads (ai_router alone, picking
// with its endpointPicker), and a route naming a pool ai_router's
// endpointPicker does not have is caught.
func TestREADMEOneFilterBootstrapValidates(t *testing.T) {
	block := readmeBlock(t, "onefilter-bootstrap")
	_, filters, err := ValidateYAML([]byte(block))
	require.NoError(t, err)
	require.Equal(t, []string{"ai_router"}, names(filters))
	for _, tc := range []struct{ name, old, new, wantErr string }{
		{"route names a missing pool", "value: {pool: b}", "value: {pool: c}", `per-route pool "c" is not a pool of any ai_router's endpointPicker`},
		{"a bad endpointPicker", "ports: [8000]}}}\n", "ports: [0]}}}\n", `"endpointPicker"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, block, tc.old, "mutation no longer applies to the README")
			_, _, err := ValidateYAML([]byte(strings.Replace(block, tc.old, tc.new, 1)))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
