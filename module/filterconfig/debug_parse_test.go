//go:build inferencepool_debug

package filterconfig

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The test build parses the "debug" object and takes it out of the config
// the filter's own parser sees.
func TestParseDebug(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "StringValue holding JSON", filter: AIRouter, raw: `"{\"debug\":{\"panicIn\":\"request_body\"}}"`,
			check: func(t *testing.T, p *Parsed) { require.Equal(t, "request_body", p.Debug.PanicIn) }},
		{name: "unknown debug field is named", filter: AIRouter, raw: `{"debug":{"bogus":true}}`, wantErr: `"bogus"`},
		{name: "bad debug hook is named", filter: AIRouter, raw: `{"debug":{"panicIn":"somewhere"}}`, wantErr: `debug.panicIn`},
		{name: "debug type mismatch names the field", filter: AIRouter, raw: `{"debug":{"asyncRequestHeaders":"yes"}}`, wantErr: `asyncRequestHeaders`},
		{name: "malformed debug", filter: AIRouter, raw: `{"debug":`, wantErr: "invalid JSON"},
		{name: "debug async", filter: AIRouter, raw: `{"debug":{"asyncRequestHeaders":true}}`,
			check: func(t *testing.T, p *Parsed) { require.True(t, p.Debug.Enabled()) }},
		{name: "debug seeds filter state", filter: AIUpstream, raw: `{"debug":{"seedFilterState":{"k":""}},"backends":[{"name":"a","schema":"openai"}]}`,
			check: func(t *testing.T, p *Parsed) {
				require.True(t, p.Debug.Enabled())
				require.Equal(t, map[string]string{"k": ""}, p.Debug.SeedFilterState)
			}},
		{name: "debug beside the picker's own config", filter: EndpointPicker,
			raw: `{"debug":{"panicIn":"scheduled"},"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]}`,
			check: func(t *testing.T, p *Parsed) {
				require.Equal(t, "scheduled", p.Debug.PanicIn)
				require.Equal(t, "p", p.EndpointPicker.Pools[0].Name)
			}},
	})
}
