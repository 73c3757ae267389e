package filterconfig

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []parseCase{
		{name: "empty config means defaults", filter: AIRouter, raw: ""},
		{name: "picker needs a pool", filter: EndpointPicker, raw: "{}", wantErr: "pools"},
		{name: "picker with a static pool", filter: EndpointPicker, raw: `{"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]}`,
			check: func(t *testing.T, p *Parsed) { require.Equal(t, "p", p.EndpointPicker.Pools[0].Name) }},
		{name: "picker field errors are named", filter: EndpointPicker, raw: `{"pools":[{"name":"p","endpoints":{"static":["nope"]}}]}`, wantErr: "pools[0].endpoints"},
		{name: "unknown top-level field is named", filter: AIRouter, raw: `{"nope":1}`, wantErr: `unknown field "nope"`},
		{name: "StringValue holding JSON", filter: EndpointPicker, raw: `"{\"pools\":[{\"name\":\"p\",\"endpoints\":{\"static\":[\"127.0.0.1:8000\"]}}]}"`,
			check: func(t *testing.T, p *Parsed) { require.Equal(t, "p", p.EndpointPicker.Pools[0].Name) }},
		{name: "malformed JSON", filter: AIRouter, raw: `{"models":`, wantErr: "invalid JSON"},
		{name: "trailing data", filter: AIRouter, raw: `{} {}`, wantErr: "data after the top-level value"},
		{name: "unknown filter", filter: "other", raw: `{}`, wantErr: `unknown filter_name "other"`},
		{name: "ai_router that picks", filter: AIRouter, raw: `{"models":[{"name":"m"}],"endpointPicker":{"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]}}`,
			check: func(t *testing.T, p *Parsed) {
				require.Equal(t, "p", p.EndpointPicker.Pools[0].Name)
				require.NotNil(t, p.AIRouter)
			}},
		{name: "ai_router without endpointPicker picks nothing", filter: AIRouter, raw: `{}`,
			check: func(t *testing.T, p *Parsed) { require.Nil(t, p.EndpointPicker) }},
		{name: "ai_router's endpointPicker errors are named", filter: AIRouter, raw: `{"endpointPicker":{"pools":[{"name":"p","endpoints":{"static":["nope"]}}]}}`,
			wantErr: `field "endpointPicker": pools[0].endpoints`},
		{name: "ai_router's endpointPicker is an object", filter: AIRouter, raw: `{"endpointPicker":"p"}`, wantErr: `field "endpointPicker": want an object`},
		{name: "ai_router's endpointPicker needs a pool", filter: AIRouter, raw: `{"endpointPicker":{}}`, wantErr: "pools"},
		{name: "ai_router's endpointPicker once", filter: AIRouter, raw: `{"endpointPicker":{},"endpoint\u0050icker":{}}`, wantErr: `"endpointPicker" given 2 times`},
		{name: "ai_router's other fields still judged", filter: AIRouter, raw: ` { "endpointPicker" : {"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]} , "nope" : 1 }`, wantErr: `unknown field "nope"`},
		{name: "ai_router's fields around endpointPicker kept", filter: AIRouter, raw: `{"maxRequestBodyBytes":1000,"endpointPicker":{"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]},"models":[{"name":"m"}]}`,
			check: func(t *testing.T, p *Parsed) {
				require.EqualValues(t, 1000, p.AIRouter.MaxRequestBodyBytes)
				require.Len(t, p.AIRouter.Models, 1)
				require.Equal(t, "p", p.EndpointPicker.Pools[0].Name)
			}},
	}
	runParseCases(t, tests)
}

type parseCase struct {
	name    string
	filter  string
	raw     string
	wantErr string
	check   func(t *testing.T, p *Parsed)
}

func runParseCases(t *testing.T, tests []parseCase) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.filter, []byte(tc.raw))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Contains(t, err.Error(), tc.filter)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestParsePerRoute(t *testing.T) {
	tests := []struct {
		name, filter, raw string
		wantPool, wantErr string
	}{
		{name: "a pool", filter: EndpointPicker, raw: `{"pool":"b"}`, wantPool: "b"},
		{name: "StringValue holding JSON", filter: EndpointPicker, raw: `"{\"pool\":\"b\"}"`, wantPool: "b"},
		{name: "pool required", filter: EndpointPicker, raw: `{}`, wantErr: `field "pool" is required`},
		{name: "empty config", filter: EndpointPicker, raw: ``, wantErr: `field "pool" is required`},
		{name: "unknown field named", filter: EndpointPicker, raw: `{"pool":"b","pools":[]}`, wantErr: `unknown field "pools"`},
		{name: "wrong type named", filter: EndpointPicker, raw: `{"pool":1}`, wantErr: `pool`},
		{name: "malformed JSON", filter: EndpointPicker, raw: `{"pool":`, wantErr: "invalid JSON"},
		{name: "ai_router's, for its endpointPicker", filter: AIRouter, raw: `{"pool":"b"}`, wantPool: "b"},
		{name: "ai_router's takes only a pool", filter: AIRouter, raw: `{"pool":"b","model":"m"}`, wantErr: `unknown field "model"`},
		{name: "ai_upstream has none", filter: AIUpstream, raw: `{"pool":"b"}`, wantErr: `"ai_upstream" has no per-route config`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := ParsePerRoute(tc.filter, []byte(tc.raw))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantPool, rc.Pool)
		})
	}
}
