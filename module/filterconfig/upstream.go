package filterconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/strictjson"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// Where ai_upstream reads which backend an attempt reached: the chosen
// host's metadata, under AI Gateway's own namespace and key (its
// InternalEndpointMetadataNamespace and InternalMetadataBackendNameKey), so
// that clusters written for AI Gateway's upstream ext_proc work unchanged.
const (
	HostBackendNamespace = "aigateway.envoy.io"
	HostBackendKey       = "per_route_rule_backend_name"
)

// AIUpstreamConfig is ai_upstream's filter_config: the provider backends
// behind the cluster the filter sits on.
type AIUpstreamConfig struct {
	// Backends, by name. An attempt's host names its backend in its
	// metadata (HostBackendNamespace / HostBackendKey).
	Backends []UpstreamBackend
	// DefaultBackend is the backend of a host without that metadata: the
	// configured defaultBackend, else the only backend when there is one,
	// else empty (such a host's attempts are refused).
	DefaultBackend string
}

// UpstreamBackend is one backend: its name, its translation (checked, with
// no key yet) and the file its API key is read from.
type UpstreamBackend struct {
	Name string
	// APIKeyFile is a mounted secret holding the API key (surrounding
	// white space trimmed); empty: the backend gets no key.
	APIKeyFile string
	// CredentialsFile (aws_bedrock) is a shared credentials file (INI) to
	// sign with, read again when it changes; empty: the environment's
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else the shared
	// credentials file ($AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials).
	CredentialsFile string
	// ServiceAccountKeyFile (vertex_ai) is a Google service account's JSON
	// key: the module mints and refreshes OAuth tokens from it.
	ServiceAccountKeyFile string
	// Profile (aws_bedrock) is the profile of the credentials file; empty:
	// $AWS_PROFILE, else "default".
	Profile string
	// Config is the translator's config with its defaults filled in; the
	// module pairs it with the key (transform.NewBackend).
	Config transform.BackendConfig
}

// aiUpstreamJSON is the filter_config as written. Each backend is its name,
// its apiKeyFile and transform.BackendConfig's fields beside them.
type aiUpstreamJSON struct {
	Backends       []json.RawMessage `json:"backends"`
	DefaultBackend string            `json:"defaultBackend"`
}

// ParseAIUpstream parses ai_upstream's filter_config. It reads no file: the
// module reads the API keys when it loads the config.
func ParseAIUpstream(raw []byte) (*AIUpstreamConfig, error) {
	var c aiUpstreamJSON
	if err := strictjson.Decode(Normalize(raw), &c); err != nil {
		return nil, err
	}
	if len(c.Backends) == 0 {
		return nil, errors.New(`backends: at least one backend is required`)
	}
	out := &AIUpstreamConfig{DefaultBackend: c.DefaultBackend}
	seen := map[string]bool{}
	for i, rawBackend := range c.Backends {
		b, err := parseUpstreamBackend(rawBackend)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("backends[%d]", i), err)
		}
		if seen[b.Name] {
			return nil, fmt.Errorf("backends[%d].name: %q is used twice", i, b.Name)
		}
		seen[b.Name] = true
		out.Backends = append(out.Backends, b)
	}
	switch {
	case c.DefaultBackend != "" && !seen[c.DefaultBackend]:
		return nil, fmt.Errorf("defaultBackend: %q is not the name of a backend", c.DefaultBackend)
	case c.DefaultBackend == "" && len(out.Backends) == 1:
		out.DefaultBackend = out.Backends[0].Name
	}
	return out, nil
}

// parseUpstreamBackend takes name and apiKeyFile out of one backend object
// and hands the rest to transform.ParseBackend (strict: a misspelled field
// is named). Errors start with the field name, for the caller to prefix.
func parseUpstreamBackend(raw json.RawMessage) (UpstreamBackend, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return UpstreamBackend{}, errors.New("schema: a backend must be an object with name, schema and the schema's fields")
	}
	var b UpstreamBackend
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &b.Name}, {"apiKeyFile", &b.APIKeyFile}, {"credentialsFile", &b.CredentialsFile}, {"profile", &b.Profile}, {"serviceAccountKeyFile", &b.ServiceAccountKeyFile}} {
		v, ok := obj[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return b, fmt.Errorf("%s: must be a string", f.name)
		}
		delete(obj, f.name)
	}
	if b.Name == "" {
		return b, errors.New("name: required")
	}
	if !printableName(b.Name) {
		return b, errors.New("name: must be printable text without control characters")
	}
	for _, f := range [...]struct{ name, value string }{{"apiKeyFile", b.APIKeyFile}, {"credentialsFile", b.CredentialsFile}, {"profile", b.Profile}, {"serviceAccountKeyFile", b.ServiceAccountKeyFile}} {
		if f.value != "" && strings.TrimSpace(f.value) != f.value {
			return b, fmt.Errorf("%s: must not start or end with white space", f.name)
		}
	}
	rest, err := json.Marshal(obj)
	if err != nil {
		return b, fmt.Errorf("schema: %v", err)
	}
	backend, err := transform.ParseBackend(rest, "")
	if err != nil {
		return b, err
	}
	b.Config = backend.BackendConfig
	bedrock := b.Config.Schema == transform.SchemaBedrock
	switch {
	case bedrock && b.APIKeyFile != "":
		return b, errors.New("apiKeyFile: not for schema aws_bedrock, whose requests are signed: use credentialsFile (or the environment)")
	case !bedrock && b.CredentialsFile != "":
		return b, errors.New("credentialsFile: only for schema aws_bedrock")
	case !bedrock && b.Profile != "":
		return b, errors.New("profile: only for schema aws_bedrock")
	case b.ServiceAccountKeyFile != "" && b.Config.Schema != transform.SchemaVertexAI:
		return b, errors.New("serviceAccountKeyFile: only for schema vertex_ai")
	case b.ServiceAccountKeyFile != "" && b.APIKeyFile != "":
		return b, errors.New("serviceAccountKeyFile: give either it or apiKeyFile (an access token), not both")
	}
	return b, nil
}

// fieldErr puts path before an error that starts with a field name
// ("schema: ..." becomes "backends[0].schema: ..."), or before one about
// the object itself ("backends[0]: unknown field ...").
func fieldErr(path string, err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown field") || strings.HasPrefix(msg, "invalid JSON") {
		return fmt.Errorf("%s: %w", path, err)
	}
	return fmt.Errorf("%s.%w", path, err)
}

func printableName(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
