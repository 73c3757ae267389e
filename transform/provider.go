package transform

// Which provider served a response, as the GenAI stats' gen_ai.provider.name
// tag says it. ai_upstream knows the backend of each attempt; ai_router,
// which meters the (OpenAI-shaped) answer downstream, does not. So each
// attempt writes its backend's provider into the stream's dynamic metadata
// (shared by the downstream chain and every attempt: the last attempt's
// value wins) and ai_router reads it back when it accounts the response.

// Provider names: Envoy AI Gateway's values of gen_ai.provider.name for the
// same API schemas (internal/metrics there), so that dashboards built on
// AI Gateway's stats keep working. (OpenTelemetry's registry spells Azure
// OpenAI "azure.ai.openai"; AI Gateway's GenAI stats say "azure.openai".)
const (
	ProviderOpenAI      = "openai"
	ProviderAzureOpenAI = "azure.openai"
	ProviderAnthropic   = "anthropic"
	// OpenTelemetry's GenAI registry values for Google's and AWS's APIs.
	ProviderGemini   = "gcp.gemini"
	ProviderVertexAI = "gcp.vertex_ai"
	ProviderBedrock  = "aws.bedrock"
)

// OtherProvider is the tag value of a provider name this library does not
// write (another filter's metadata): stat tags stay bounded.
const OtherProvider = "_OTHER"

// Dynamic metadata ai_upstream writes, in CostNamespace (AI Gateway's):
const (
	// ProviderNameKey: the provider of the attempt's backend (a string),
	// set when the attempt starts.
	ProviderNameKey = "gen_ai.provider.name"
	// BackendNameKey: the configured name of the attempt's backend (a
	// string, AI Gateway's key), set when the attempt starts.
	BackendNameKey = "backend_name"
	// CacheCreationInputTokensKey: the input tokens the provider wrote to
	// its prompt cache (a number), set at the end of a response that
	// reported usage, by the translators that know them
	// (CacheCreationReporter: Anthropic).
	CacheCreationInputTokensKey = "cache_creation_input_tokens"
)

// TokenTypeCacheCreationInput is the gen_ai.token.type of prompt-cache
// writes (AI Gateway's value), which Usage.Counts does not list.
const TokenTypeCacheCreationInput = "cache_creation_input"

var schemaProviders = map[string]string{
	SchemaOpenAI:      ProviderOpenAI,
	SchemaAzureOpenAI: ProviderAzureOpenAI,
	SchemaAnthropic:   ProviderAnthropic,
	SchemaGemini:      ProviderGemini,
	SchemaVertexAI:    ProviderVertexAI,
	SchemaBedrock:     ProviderBedrock,
}

// Provider is the gen_ai.provider.name of the backend's schema ("" for a
// schema NewBackend refuses).
func (c BackendConfig) Provider() string { return schemaProviders[c.Schema] }

// MetricProvider is the gen_ai.provider.name tag value for what ai_router
// read under ProviderNameKey: a provider this library writes is itself;
// nothing (ok false: no ai_upstream on the cluster, the answer came from an
// InferencePool's model servers, which speak OpenAI's API) is
// ProviderOpenAI, the value ai_upstream gives an OpenAI-compatible backend
// too and AI Gateway gives a backend of the OpenAI schema; anything else
// is OtherProvider.
func MetricProvider(name string, ok bool) string {
	switch {
	case !ok:
		return ProviderOpenAI
	case name == ProviderOpenAI:
		return ProviderOpenAI
	case name == ProviderAzureOpenAI:
		return ProviderAzureOpenAI
	case name == ProviderAnthropic:
		return ProviderAnthropic
	case name == ProviderGemini:
		return ProviderGemini
	case name == ProviderVertexAI:
		return ProviderVertexAI
	case name == ProviderBedrock:
		return ProviderBedrock
	}
	return OtherProvider
}
