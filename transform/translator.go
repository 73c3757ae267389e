package transform

// The translator seam of the ai_upstream filter (issue 8). The filter runs
// in a cluster's upstream HTTP filter chain, once per attempt: it hands each
// attempt's request to a Translator made for the backend the attempt
// reaches, and the response back through the same Translator. The Translator
// holds the per-stream state of the exchange (what the request asked for,
// the SSE line in progress, the usage seen); the module only moves bytes and
// headers between Envoy and it. TRANSLATORS.md describes the mappings.

// HeaderEdit is one change to a header map: set Name to Value, or remove
// Name. Names are lower-case; ":path" is the request path.
type HeaderEdit struct {
	Name   string
	Value  string
	Remove bool
}

// UpstreamRequest is one attempt's request as the translator needs it.
type UpstreamRequest struct {
	// Path is the request's original :path, as the downstream filters left
	// it, never the value a previous attempt's translation wrote: retries
	// share the request header map, so the module keeps the original.
	Path string
	// AcceptEncoding is the request's original accept-encoding ("" for
	// none), likewise: a translation that reads the response removes the
	// header, and a retry to a backend whose answer passes as is must get
	// the original back.
	AcceptEncoding string
	// Body is the whole request body (the router's buffered copy, fresh for
	// every attempt). It is not kept after the call returns.
	Body []byte
}

// TranslatedRequest is what an attempt sends instead.
type TranslatedRequest struct {
	// Headers are all the header edits the translation owns, computed from
	// the original values only: :path, content-length, accept-encoding,
	// the credentials headers (set or removed) and the provider's own
	// headers. Applying
	// them to a header map an earlier attempt already edited gives the same
	// result as applying them to the original one. They (their strings
	// too) may be the translator's own memory: apply them before the next
	// call.
	Headers []HeaderEdit
	// Body is the body to send. It is the request's Body itself when the
	// translation leaves it as is, else the translator's own memory (kept
	// for its next exchange: send or copy it before); the content-length
	// among Headers is len(Body) either way, so the module must hold the
	// request headers until the body is translated.
	Body []byte
}

// UpstreamResponse is what the response headers step reads.
type UpstreamResponse struct {
	Status          int
	ContentType     string
	ContentEncoding string
}

// TranslatedResponseHeaders is what the client is to see instead.
type TranslatedResponseHeaders struct {
	Status int // the status to hand to the router (maybe mapped)
	// Headers: content-type, content-length removal, ... They may be the
	// translator's own memory: apply them before the next call.
	Headers []HeaderEdit
	// Whole: the body is translated whole, at its end (a JSON answer or an
	// error body). The module holds the headers until then and sends the
	// status FinalStatus gives: only the whole body can tell that a 200
	// carries an error (a blocked prompt, an error object, a body that is
	// not the provider's shape).
	Whole bool
}

// FinalStatusReporter is implemented by the translators that translate a
// body whole: after its end, FinalStatus is the status the client is to
// see (0: the one TranslateResponseHeaders gave).
type FinalStatusReporter interface {
	FinalStatus() int
}

// RequestTranslator translates one attempt's request.
type RequestTranslator interface {
	// TranslateRequest returns the headers and body to send. An error is an
	// *Error: a request the backend cannot serve, for the module to answer
	// as a local reply (its Body is OpenAI's error shape).
	TranslateRequest(req UpstreamRequest) (TranslatedRequest, error)
}

// ResponseHeadersTranslator translates the response status and headers.
type ResponseHeadersTranslator interface {
	// TranslateResponseHeaders is called once, after TranslateRequest. An
	// error is an *Error (a response the translator cannot read, such as a
	// compressed one) for the module to answer instead.
	TranslateResponseHeaders(resp UpstreamResponse) (TranslatedResponseHeaders, error)
}

// ResponseBodyTranslator translates the response body as it streams.
type ResponseBodyTranslator interface {
	// TranslateResponseBody appends to dst the bytes to send for chunk (a
	// piece of the body as received, split anywhere) and reports whether
	// they differ from chunk. When they do not, out is dst with chunk
	// appended; a caller that forwards chunk as is may ignore it. A
	// translator never holds more than it must: SSE events go out as their
	// line completes; a JSON body or an error body, which can only be
	// translated whole, goes out at endOfStream. The chunk is not kept.
	TranslateResponseBody(dst, chunk []byte, endOfStream bool) (out []byte, changed bool)
	// Usage is the token usage the provider reported, in OpenAI's terms
	// (cache reads are cached input, and count in the input), once the body
	// has carried it.
	Usage() (Usage, bool)
}

// ErrorTranslator turns a provider's error response into OpenAI's shape.
type ErrorTranslator interface {
	// TranslateError maps a non-2xx status and its body (possibly cut
	// short) to the OpenAI error the client is to see, status included.
	TranslateError(status int, body []byte) *Error
}

// Translator translates one exchange (one attempt) with one backend. It is
// used by one stream at a time, in order: TranslateRequest, then
// TranslateResponseHeaders, then TranslateResponseBody until endOfStream.
type Translator interface {
	RequestTranslator
	ResponseHeadersTranslator
	ResponseBodyTranslator
	ErrorTranslator
}

// CacheCreationReporter is implemented by the translators whose provider
// reports prompt-cache writes apart (Anthropic): Usage has no field for
// them (they count in its InputTokens).
type CacheCreationReporter interface {
	CacheCreationInputTokens() uint64
}

var (
	_ CacheCreationReporter = (*anthropicTranslator)(nil)
	_ FinalStatusReporter   = (*anthropicTranslator)(nil)
	_ FinalStatusReporter   = (*geminiTranslator)(nil)
	_ FinalStatusReporter   = (*bedrockTranslator)(nil)
)

// UsageSkipper is implemented by the translators that read the response
// only to know its Usage (those whose answer is OpenAI's already): after
// SkipUsage, before the response, Usage reports none and the response
// costs nothing to translate.
type UsageSkipper interface {
	SkipUsage()
}

// BodyPasser is implemented by the translators that may leave a response
// body as it is. PassesBody, asked after TranslateResponseHeaders, reports
// whether TranslateResponseBody would return every chunk unchanged and add
// nothing at the end: the caller may then skip reading the body at all.
type BodyPasser interface {
	PassesBody() bool
}

// Schemas a backend may speak.
const (
	SchemaOpenAI      = "openai"       // OpenAI-compatible
	SchemaAzureOpenAI = "azure_openai" // Azure OpenAI deployments
	SchemaAnthropic   = "anthropic"    // Anthropic Messages
	SchemaGemini      = "gemini"       // Google's Gemini API (generativelanguage.googleapis.com)
	SchemaVertexAI    = "vertex_ai"    // Gemini models on Google Cloud Vertex AI
	SchemaBedrock     = "aws_bedrock"  // AWS Bedrock's Converse API, SigV4-signed
)

// NewTranslator returns a fresh Translator for one exchange with the
// backend. Make one per attempt: it keeps that attempt's state. A caller
// that handles one exchange at a time (a pooled filter) keeps a
// Translators instead, which makes none per attempt.
func (b *Backend) NewTranslator() Translator {
	var ts Translators
	return ts.For(b)
}

// maxErrorBody bounds how much of an error response is read to translate
// it; the rest is dropped.
const maxErrorBody = 64 << 10

// errorBuffer collects a non-2xx body, up to maxErrorBody.
type errorBuffer struct{ buf []byte }

func (e *errorBuffer) add(chunk []byte) {
	if room := maxErrorBody - len(e.buf); room > 0 {
		e.buf = append(e.buf, chunk[:min(room, len(chunk))]...)
	}
}

func isSuccess(status int) bool { return status >= 200 && status <= 299 }

// upstreamError is the generic OpenAI error for a provider status.
func upstreamError(status int, message string) *Error {
	typ := "server_error"
	if status >= 400 && status <= 499 {
		typ = invalidRequest
	}
	return &Error{Status: status, Type: typ, Message: message}
}
