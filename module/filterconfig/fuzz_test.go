package filterconfig

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// FuzzFilterConfig feeds arbitrary filter_config and per-route bytes to the
// parsers Envoy's config load reaches: whatever the bytes, they answer with
// a config or an error, never a panic, and an error names the filter.
func FuzzFilterConfig(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `"{}"`, `null`, `[]`, `{"debug":{"panicIn":"request_body"}}`,
		`{"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]}`,
		`{"pools":[{"name":"p","endpoints":{"dns":{"name":"x.local","ports":[8000]}},"scheduler":{"scorers":[{"type":"queue","weight":2}]}}]}`,
		`{"pools":[{"name":"p","endpoints":{"file":{"path":"/nonexistent"}},"prefix":{"mode":"rendezvous"},"priorities":{"batch":-1}}]}`,
		`{"maxRequestBodyBytes":1048576,"models":[{"name":"a"},{"name":"b"}],"rewrites":[{"model":"a","targets":[{"model":"b","weight":1}]}]}`,
		`{"costs":[{"metadataKey":"k","type":"cel","cel":"input_tokens * uint(2) + output_tokens"}]}`,
		`{"budget":{"header":"x-api-key","tokens":1000,"window":"1m"}}`,
		`{"pool":"a"}`, `{"pool":""}`, `{"pool":1}`,
		`{"models":[{"name":"m"}],"endpointPicker":{"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]},"passThroughPaths":["/x"]}`,
		`{"endpointPicker":{},"endpoint\u0050icker":{}}`, ` { "endpointPicker" : "p" } `,
		`{"backends":[{"name":"a","schema":"anthropic","apiKeyFile":"/k","maxTokens":10}],"defaultBackend":"a"}`,
		`{"backends":[{"name":"a","schema":"azure_openai","apiVersion":"2024-10-21"},{"name":"b","schema":"openai"}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, filter := range []string{AIRouter, EndpointPicker, AIUpstream} {
			p, err := Parse(filter, []byte(raw))
			if err != nil {
				require.Contains(t, err.Error(), filter)
			} else {
				require.NotNil(t, p)
			}
			rc, err := ParsePerRoute(filter, []byte(raw))
			if err == nil {
				require.NotEmpty(t, rc.Pool)
			}
		}
		// What ai_router's parser gets once endpointPicker is taken out is
		// still one JSON object, without it.
		if rest, pc, err := splitRouterPicker([]byte(raw)); err == nil && pc != nil {
			require.True(t, gjson.ValidBytes(rest), "%q from %q", rest, raw)
			require.False(t, gjson.GetBytes(rest, RouterPicker).Exists(), "%q from %q", rest, raw)
		}
	})
}
