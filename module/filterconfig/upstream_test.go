package filterconfig

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseAIUpstream(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "one backend is the default", filter: AIUpstream, raw: `{"backends":[{"name":"claude","schema":"anthropic","apiKeyFile":"/k","maxTokens":100}]}`,
			check: func(t *testing.T, p *Parsed) {
				c := p.AIUpstream
				require.Equal(t, "claude", c.DefaultBackend)
				require.Equal(t, "/k", c.Backends[0].APIKeyFile)
				require.EqualValues(t, 100, c.Backends[0].Config.MaxTokens)
				require.Equal(t, "/v1", c.Backends[0].Config.PathPrefix, "defaults filled")
			}},
		{name: "two backends, no default", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"openai"},{"name":"b","schema":"openai"}]}`,
			check: func(t *testing.T, p *Parsed) { require.Empty(t, p.AIUpstream.DefaultBackend) }},
		{name: "escaped field names are read as written", filter: AIUpstream, raw: `{"backends":[{"n\u0061me":"a","schema":"openai"}]}`,
			check: func(t *testing.T, p *Parsed) { require.Equal(t, "a", p.AIUpstream.Backends[0].Name) }},
		{name: "StringValue holding JSON", filter: AIUpstream, raw: `"{\"backends\":[{\"name\":\"a\",\"schema\":\"openai\"}]}"`},
		{name: "backends required", filter: AIUpstream, raw: `{}`, wantErr: "backends"},
		{name: "backend not an object", filter: AIUpstream, raw: `{"backends":[1]}`, wantErr: "backends[0]"},
		{name: "name required", filter: AIUpstream, raw: `{"backends":[{"schema":"openai"}]}`, wantErr: "backends[0].name"},
		{name: "name with control characters", filter: AIUpstream, raw: `{"backends":[{"name":"a\n","schema":"openai"}]}`, wantErr: "backends[0].name"},
		{name: "schema required", filter: AIUpstream, raw: `{"backends":[{"name":"a"}]}`, wantErr: "backends[0].schema"},
		{name: "azure needs apiVersion", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"azure_openai"}]}`, wantErr: "backends[0].apiVersion"},
		{name: "misspelled field", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"openai","pathprefix":"/x"}]}`, wantErr: `backends[0]: unknown field "pathprefix"`},
		{name: "apiKeyFile with spaces", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"openai","apiKeyFile":" /k"}]}`, wantErr: "backends[0].apiKeyFile"},
		{name: "duplicate", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"openai"},{"name":"a","schema":"anthropic"}]}`, wantErr: "backends[1].name"},
		{name: "default unknown", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"openai"}],"defaultBackend":"x"}`, wantErr: "defaultBackend"},
		{name: "bedrock with a credentials file and profile", filter: AIUpstream,
			raw: `{"backends":[{"name":"b","schema":"aws_bedrock","region":"us-east-1","credentialsFile":"/aws/credentials","profile":"bedrock"}]}`,
			check: func(t *testing.T, p *Parsed) {
				b := p.AIUpstream.Backends[0]
				require.Equal(t, "/aws/credentials", b.CredentialsFile)
				require.Equal(t, "bedrock", b.Profile)
				require.Equal(t, "us-east-1", b.Config.Region)
			}},
		{name: "bedrock takes no apiKeyFile", filter: AIUpstream, raw: `{"backends":[{"name":"b","schema":"aws_bedrock","region":"us-east-1","apiKeyFile":"/k"}]}`, wantErr: "backends[0].apiKeyFile: not for schema aws_bedrock"},
		{name: "bedrock needs a region", filter: AIUpstream, raw: `{"backends":[{"name":"b","schema":"aws_bedrock"}]}`, wantErr: "backends[0].region"},
		{name: "credentialsFile only for bedrock", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"openai","credentialsFile":"/c"}]}`, wantErr: "backends[0].credentialsFile"},
		{name: "profile only for bedrock", filter: AIUpstream, raw: `{"backends":[{"name":"a","schema":"gemini","profile":"p"}]}`, wantErr: "backends[0].profile"},
		{name: "vertex with a service account key", filter: AIUpstream, raw: `{"backends":[{"name":"v","schema":"vertex_ai","project":"p","location":"l","serviceAccountKeyFile":"/sa.json"}]}`,
			check: func(t *testing.T, p *Parsed) {
				require.Equal(t, "/sa.json", p.AIUpstream.Backends[0].ServiceAccountKeyFile)
			}},
		{name: "service account key only for vertex", filter: AIUpstream, raw: `{"backends":[{"name":"g","schema":"gemini","serviceAccountKeyFile":"/sa.json"}]}`, wantErr: "backends[0].serviceAccountKeyFile: only for schema vertex_ai"},
		{name: "service account key or token", filter: AIUpstream, raw: `{"backends":[{"name":"v","schema":"vertex_ai","project":"p","location":"l","serviceAccountKeyFile":"/sa.json","apiKeyFile":"/t"}]}`, wantErr: "backends[0].serviceAccountKeyFile: give either"},
		{name: "no per-route config", filter: AIUpstream, raw: `{"backends":"a"}`, wantErr: "backends"},
	})
	_, err := ParsePerRoute(AIUpstream, []byte(`{"pool":"a"}`))
	require.ErrorContains(t, err, "no per-route config")
}
