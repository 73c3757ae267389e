package transform

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/strictjson"
)

// BackendConfig describes the provider behind a cluster: the schema it
// speaks and how requests reach it. Fields that a schema does not use are
// refused, so that a typo'd deployment does not silently go nowhere.
type BackendConfig struct {
	// Schema is openai, azure_openai, anthropic, gemini or vertex_ai.
	Schema string `json:"schema"`
	// Model, when set, is the model name sent to this backend instead of
	// the request's; responses name the request's model again.
	Model string `json:"model"`
	// PathPrefix replaces the leading "/v1" of OpenAI paths (openai: default
	// "/v1", e.g. "/v1beta/openai"), or is put before the deployment path
	// (azure_openai: default "/openai") or before "/messages" (anthropic:
	// default "/v1").
	PathPrefix string `json:"pathPrefix"`
	// APIVersion is azure_openai's api-version query parameter (required).
	APIVersion string `json:"apiVersion"`
	// Deployment is azure_openai's deployment name; default: the model
	// sent (Model, else the request's).
	Deployment string `json:"deployment"`
	// MaxTokens is anthropic's max_tokens when the request sets neither
	// max_completion_tokens nor max_tokens (Anthropic requires one).
	// Default 4096.
	MaxTokens int64 `json:"maxTokens"`
	// AnthropicVersion is anthropic's anthropic-version header. Default
	// "2023-06-01".
	AnthropicVersion string `json:"anthropicVersion"`
	// Project and Location are vertex_ai's Google Cloud project and region
	// (both required), as in .../projects/P/locations/L/publishers/google/...
	Project  string `json:"project"`
	Location string `json:"location"`
	// Region is aws_bedrock's AWS region (required): the endpoint is
	// bedrock-runtime.{region}.amazonaws.com and the signature's scope.
	Region string `json:"region"`
}

// Backend is a checked BackendConfig with its credential. Safe for
// concurrent use; make a Translator per exchange with NewTranslator.
type Backend struct {
	BackendConfig
	apiKey string        // never logged, never in an error
	bearer string        // "Bearer " + apiKey (or ""), made once, not per request
	signer RequestSigner // aws_bedrock: signs each translated request
}

// Defaults of BackendConfig.
const (
	DefaultAnthropicMaxTokens = 4096
	DefaultAnthropicVersion   = "2023-06-01"
	defaultOpenAIPrefix       = "/v1"
	defaultAzurePrefix        = "/openai"
	defaultAnthropicPrefix    = "/v1"
	defaultGeminiPrefix       = "/v1beta"
	defaultVertexPrefix       = "/v1"
)

// ParseBackend reads a backend's JSON config (strictly: unknown fields and
// bad values are errors naming the field) and pairs it with its API key
// (empty: send none). The key is the secret's value, read by the caller.
func ParseBackend(data []byte, apiKey string) (*Backend, error) {
	var c BackendConfig
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && string(trimmed) != "null" {
		if err := strictjson.Decode(trimmed, &c); err != nil {
			return nil, err
		}
	}
	return NewBackend(c, apiKey)
}

// NewBackend checks c, fills its defaults and pairs it with apiKey.
func NewBackend(c BackendConfig, apiKey string) (*Backend, error) {
	if !knownSchema(c.Schema) {
		if c.Schema == "" {
			return nil, fmt.Errorf("schema: must be set (known: %s)", knownSchemas())
		}
		return nil, fmt.Errorf("schema: unknown schema %q (known: %s)", c.Schema, knownSchemas())
	}
	if !headerSafe(apiKey) {
		// The value is a secret: say what is wrong, never what it is.
		return nil, errors.New("apiKey: must be printable ASCII without spaces at either end")
	}
	if c.Model != "" && !printable(c.Model) {
		return nil, errors.New("model: must be UTF-8 text without control characters")
	}
	only := func(field, value, schema string) error {
		if value != "" && c.Schema != schema {
			return fmt.Errorf("%s: only for schema %s", field, schema)
		}
		return nil
	}
	if err := errors.Join(
		only("apiVersion", c.APIVersion, SchemaAzureOpenAI),
		only("deployment", c.Deployment, SchemaAzureOpenAI),
		only("anthropicVersion", c.AnthropicVersion, SchemaAnthropic),
		only("project", c.Project, SchemaVertexAI),
		only("location", c.Location, SchemaVertexAI),
		only("region", c.Region, SchemaBedrock),
	); err != nil {
		return nil, err
	}
	if c.MaxTokens != 0 && c.Schema != SchemaAnthropic {
		return nil, fmt.Errorf("maxTokens: only for schema %s", SchemaAnthropic)
	}
	if c.PathPrefix != "" && (c.PathPrefix[0] != '/' || strings.HasSuffix(c.PathPrefix, "/") || !pathSafe(c.PathPrefix)) {
		return nil, errors.New(`pathPrefix: must start with "/", not end with "/", and hold only URL path characters`)
	}
	switch c.Schema {
	case SchemaOpenAI:
		if c.PathPrefix == "" {
			c.PathPrefix = defaultOpenAIPrefix
		}
	case SchemaAzureOpenAI:
		if c.PathPrefix == "" {
			c.PathPrefix = defaultAzurePrefix
		}
		if c.APIVersion == "" {
			return nil, errors.New("apiVersion: required for schema azure_openai")
		}
		if !pathSafe(c.APIVersion) || strings.ContainsAny(c.APIVersion, "/&?#=") {
			return nil, errors.New("apiVersion: must be a plain version such as 2024-10-21")
		}
	case SchemaAnthropic:
		if c.PathPrefix == "" {
			c.PathPrefix = defaultAnthropicPrefix
		}
		if c.MaxTokens == 0 {
			c.MaxTokens = DefaultAnthropicMaxTokens
		}
		if c.MaxTokens < 0 {
			return nil, errors.New("maxTokens: must be > 0")
		}
		if c.AnthropicVersion == "" {
			c.AnthropicVersion = DefaultAnthropicVersion
		}
		if !headerSafe(c.AnthropicVersion) {
			return nil, errors.New("anthropicVersion: must be printable ASCII")
		}
	case SchemaBedrock:
		if c.PathPrefix != "" {
			return nil, errors.New("pathPrefix: not for schema aws_bedrock (its paths are /model/{id}/converse)")
		}
		if c.Region == "" {
			return nil, errors.New("region: required for schema aws_bedrock")
		}
		if !isRegion(c.Region) {
			return nil, errors.New("region: must be an AWS region such as us-east-1")
		}
	case SchemaGemini:
		if c.PathPrefix == "" {
			c.PathPrefix = defaultGeminiPrefix
		}
	case SchemaVertexAI:
		if c.PathPrefix == "" {
			c.PathPrefix = defaultVertexPrefix
		}
		for _, f := range [...]struct{ name, value string }{{"project", c.Project}, {"location", c.Location}} {
			if f.value == "" {
				return nil, fmt.Errorf("%s: required for schema vertex_ai", f.name)
			}
			if !printable(f.value) || strings.ContainsAny(f.value, "/?#") {
				return nil, fmt.Errorf("%s: must be a plain name such as my-project or us-central1", f.name)
			}
		}
	}
	return &Backend{BackendConfig: c, apiKey: apiKey, bearer: bearer(apiKey)}, nil
}

// isRegion reports whether s looks like an AWS region name: lower-case
// letters, digits and dashes, so that it can only name a host under
// amazonaws.com.
func isRegion(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// knownSchemas lists the schema names, sorted, for errors.
func knownSchemas() string {
	names := slices.Clone(schemas[:])
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// headerSafe reports whether s can be a header value as is: printable
// ASCII, no leading or trailing space (so no CR/LF can split a header).
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s == strings.TrimSpace(s)
}

// pathSafe reports whether s holds only characters a URL path may hold
// unescaped (RFC 3986 pchar and "/"), so that it cannot end the path.
func pathSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isPathChar(s[i]) && s[i] != '/' && s[i] != '%' {
			return false
		}
	}
	return true
}

// isPathChar: unreserved, sub-delims, ':' and '@' (RFC 3986 pchar, less
// percent-encoding).
func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
}

// appendPathSegment appends s as one path segment: every byte that is not
// unreserved is percent-encoded, so a model name cannot add segments, a
// query or a fragment.
func appendPathSegment(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			if c == '.' && (s == "." || s == "..") {
				dst = append(dst, "%2E"...)
				continue
			}
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}
