package transform

// Endpoint is an inference endpoint the ai_router checks: a JSON body that
// names a model, or GET /v1/models.
type Endpoint uint8

const (
	EndpointNone            Endpoint = iota // not one of ours: passed through (when listed) or 404
	EndpointChatCompletions                 // POST /v1/chat/completions
	EndpointCompletions                     // POST /v1/completions
	EndpointEmbeddings                      // POST /v1/embeddings
	EndpointResponses                       // POST /v1/responses
	EndpointModels                          // GET /v1/models, answered from the config
	EndpointMessages                        // POST /v1/messages (vLLM's Anthropic Messages API)
	EndpointScore                           // POST /score, /v1/score (vLLM, SGLang)
	EndpointRerank                          // POST /rerank, /v1/rerank, /v2/rerank (vLLM, SGLang)
	EndpointClassify                        // POST /classify (vLLM, SGLang)
	EndpointPooling                         // POST /pooling (vLLM)
	EndpointTokenize                        // POST /tokenize, /v1/tokenize (vLLM, SGLang)
	EndpointDetokenize                      // POST /detokenize, /v1/detokenize (vLLM, SGLang)
	// EndpointInvocations is SageMaker's POST /invocations, which vLLM
	// dispatches on the body (chat if it has messages, completions if it
	// has prompt, embeddings if it has input) and SGLang serves as chat.
	// Decide resolves it to one of those; a Decision never holds it.
	EndpointInvocations
	endpointCount
)

// endpoints describes each Endpoint; paths lists every path that reaches
// it, the first being its name.
var endpoints = [endpointCount]struct {
	paths []string
	op    string // gen_ai.operation.name
	field string // required top-level field, also the prompt; "" for none
}{
	EndpointChatCompletions: {[]string{"/v1/chat/completions"}, "chat", "messages"},
	EndpointCompletions:     {[]string{"/v1/completions"}, "text_completion", "prompt"},
	EndpointEmbeddings:      {[]string{"/v1/embeddings"}, "embeddings", "input"},
	EndpointResponses:       {[]string{"/v1/responses"}, "responses", "input"},
	EndpointModels:          {[]string{"/v1/models"}, "list_models", ""},
	EndpointMessages:        {[]string{"/v1/messages"}, "messages", "messages"},
	EndpointScore:           {[]string{"/score", "/v1/score"}, "score", ""},
	EndpointRerank:          {[]string{"/rerank", "/v1/rerank", "/v2/rerank"}, "rerank", ""},
	EndpointClassify:        {[]string{"/classify"}, "classify", ""},
	EndpointPooling:         {[]string{"/pooling"}, "pooling", ""},
	EndpointTokenize:        {[]string{"/tokenize", "/v1/tokenize"}, "tokenize", ""},
	EndpointDetokenize:      {[]string{"/detokenize", "/v1/detokenize"}, "detokenize", ""},
	EndpointInvocations:     {[]string{"/invocations"}, "invocations", ""},
}

// endpointOfPath maps every normalised path of a known endpoint to it.
var endpointOfPath = func() map[string]Endpoint {
	m := make(map[string]Endpoint)
	for e := EndpointNone + 1; e < endpointCount; e++ {
		for _, p := range endpoints[e].paths {
			m[p] = e
		}
	}
	return m
}()

// EndpointOf classifies a request path (the :path header) the way the
// servers behind us route it: NormalizePath first, then an exact match.
func EndpointOf(path string) Endpoint {
	return endpointOfPath[NormalizePath(path)]
}

// String returns the endpoint's path, or "" for EndpointNone.
func (e Endpoint) String() string {
	if e == EndpointNone || e >= endpointCount {
		return ""
	}
	return endpoints[e].paths[0]
}

// Operation is the OpenTelemetry GenAI operation name (gen_ai.operation.name)
// of the endpoint. The Responses API has no name in the semantic conventions;
// "responses" is Envoy AI Gateway's. The other non-OpenAI endpoints are named
// after their path.
func (e Endpoint) Operation() string {
	if e >= endpointCount {
		return ""
	}
	return endpoints[e].op
}

// hasBody reports whether the endpoint takes a JSON request body we parse.
func (e Endpoint) hasBody() bool {
	return e != EndpointNone && e != EndpointModels && e < endpointCount
}

// promptField is the top-level request field every request to the endpoint
// must carry ("" when none is required); its value is also the prompt the
// endpoint picker hashes.
func (e Endpoint) promptField() string {
	if e >= endpointCount {
		return ""
	}
	return endpoints[e].field
}

// streamsUsageOnRequest reports whether the endpoint reports streamed usage
// only when asked with stream_options.include_usage. The Responses API always
// reports it in its response.completed event.
func (e Endpoint) streamsUsageOnRequest() bool {
	return e == EndpointChatCompletions || e == EndpointCompletions
}
