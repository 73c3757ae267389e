package envoyconfig

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const rootConfig = "../../envoy.yaml"

func TestEnvoyYAMLValidates(t *testing.T) {
	b, filters, err := ValidateFile(rootConfig)
	require.NoError(t, err)
	require.Len(t, b.GetStaticResources().GetClusters(), 1)
	require.Equal(t, []string{"ai_router", "endpoint_picker"}, names(filters))
}

// Each mutation of envoy.yaml is something Envoy or the library would
// refuse; the validator must refuse it too.
func TestBrokenConfigsAreRejected(t *testing.T) {
	base, err := os.ReadFile(rootConfig)
	require.NoError(t, err)
	tests := []struct {
		name, old, new, wantErr string
	}{
		{"unknown typed config", "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
			"type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope", "nope"},
		{"override_host without sources (inside an Any)", "override_host_sources:\n            - header: x-gateway-destination-endpoint\n            - metadata:\n                key: envoy.lb\n                path: [{key: x-gateway-destination-endpoint}]\n",
			"override_host_sources: []\n", "OverrideHostSources"},
		{"bad filter_config field", "                  - name: pool\n", "                  - name: pool\n                    bogusField: 1\n", "bogusField"},
		{"bad filter_config value", "engine: vllm", "engine: tgi", "engine"},
		{"picker without pools", "                  pools:\n", "                  poolz:\n", "poolz"},
		{"unknown filter_name", "filter_name: ai_router", "filter_name: ai_routr", `unknown filter_name "ai_routr"`},
		{"wrong module name", "name: inferencepool, do_not_close: true}\n              filter_name: ai_router", "name: other, do_not_close: true}\n              filter_name: ai_router", "dynamic_module_config.name"},
		{"bootstrap-level rule", "connect_timeout: 1s", "connect_timeout: -1s", "ConnectTimeout"},
		{"unknown bootstrap field", "stat_prefix: inference", "stat_prefix: inference\n          bogus_field: 1", "bogus_field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := string(base)
			require.Contains(t, s, tc.old, "mutation no longer applies to envoy.yaml")
			_, _, err := ValidateYAML([]byte(strings.Replace(s, tc.old, tc.new, 1)))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestStringValueFilterConfig(t *testing.T) {
	base, err := os.ReadFile(rootConfig)
	require.NoError(t, err)
	s := strings.Replace(string(base), "filter_name: ai_router\n              filter_config:\n                \"@type\": type.googleapis.com/google.protobuf.Struct\n                value: {}",
		"filter_name: ai_router\n              filter_config:\n                \"@type\": type.googleapis.com/google.protobuf.StringValue\n                value: '{\"maxRequestBodyBytes\":1048576}'", 1)
	_, filters, err := ValidateYAML([]byte(s))
	require.NoError(t, err)
	require.JSONEq(t, `{"maxRequestBodyBytes":1048576}`, string(filters[0].FilterConfig))
}

func names(fs []DynamicModuleFilter) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.FilterName)
	}
	return out
}
