package transform

import (
	"slices"
	"time"
)

// schemas are the schema names a backend may have, each served by one kind
// of translator (Translators.For).
var schemas = [...]string{SchemaOpenAI, SchemaAzureOpenAI, SchemaAnthropic, SchemaGemini, SchemaVertexAI, SchemaBedrock}

func knownSchema(s string) bool { return slices.Contains(schemas[:], s) }

// Translators keeps one translator of each kind for a user that handles
// one exchange at a time, in order (a pooled upstream filter: one attempt,
// then the next): For hands out the one of a backend's schema, set as a
// new one would be, so an attempt costs no allocation for its translator
// once its kind was used. Not safe for concurrent use; the zero value is
// ready.
type Translators struct {
	openAI    *openAITranslator
	azure     *azureTranslator
	anthropic *anthropicTranslator
	gemini    *geminiTranslator // gemini and vertex_ai
	bedrock   *bedrockTranslator
}

// For returns the translator for one exchange with b: the one For returned
// before for that kind, with every field set as NewTranslator's (nothing
// of the earlier exchange is left, whether it ended or was cut) but its
// buffers (emptied, bounded by maxKeptBuffer): the provider translators
// write requests and answers into them, so a reused one allocates little.
// The earlier exchange of that kind must be over: its translator is this
// one, and what it returned (the request body, the header edits) is its
// memory.
func (ts *Translators) For(b *Backend) Translator {
	switch b.Schema {
	case SchemaOpenAI:
		ts.openAI = renew(ts.openAI)
		*ts.openAI = openAITranslator{backend: b}
		return ts.openAI
	case SchemaAzureOpenAI:
		ts.azure = renew(ts.azure)
		*ts.azure = azureTranslator{openAITranslator{backend: b}}
		return ts.azure
	case SchemaAnthropic:
		ts.anthropic = renew(ts.anthropic)
		ts.anthropic.reset(b, time.Now)
		return ts.anthropic
	case SchemaGemini, SchemaVertexAI:
		ts.gemini = renew(ts.gemini)
		ts.gemini.reset(b, time.Now)
		return ts.gemini
	case SchemaBedrock:
		ts.bedrock = renew(ts.bedrock)
		ts.bedrock.reset(b, time.Now)
		return ts.bedrock
	}
	panic("transform: backend of unknown schema " + b.Schema) // NewBackend refuses those
}

// Release drops what the kept translators hold (backends with their keys,
// the last exchange's model names and state), keeping the translators
// themselves for the next For, with their buffers emptied (each bounded by
// maxKeptBuffer).
func (ts *Translators) Release() {
	clearTranslator(ts.openAI)
	clearTranslator(ts.azure)
	if ts.anthropic != nil {
		ts.anthropic.reset(nil, nil)
	}
	if ts.gemini != nil {
		ts.gemini.reset(nil, nil)
	}
	if ts.bedrock != nil {
		ts.bedrock.reset(nil, nil)
	}
}

func renew[T any](t *T) *T {
	if t == nil {
		return new(T)
	}
	return t
}

func clearTranslator[T any](t *T) {
	if t != nil {
		var zero T
		*t = zero
	}
}
