package transform

import "strings"

// Endpoint is an OpenAI API endpoint the ai_router understands.
type Endpoint uint8

const (
	EndpointNone            Endpoint = iota // any other path: passed through or rejected
	EndpointChatCompletions                 // POST /v1/chat/completions
	EndpointCompletions                     // POST /v1/completions
	EndpointEmbeddings                      // POST /v1/embeddings
	EndpointResponses                       // POST /v1/responses
	EndpointModels                          // GET /v1/models, answered from the config
)

// EndpointOf classifies a request path (the :path header). The query string
// and fragment are ignored; anything else must match exactly.
func EndpointOf(path string) Endpoint {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	switch path {
	case "/v1/chat/completions":
		return EndpointChatCompletions
	case "/v1/completions":
		return EndpointCompletions
	case "/v1/embeddings":
		return EndpointEmbeddings
	case "/v1/responses":
		return EndpointResponses
	case "/v1/models":
		return EndpointModels
	}
	return EndpointNone
}

// String returns the endpoint's path, or "" for EndpointNone.
func (e Endpoint) String() string {
	switch e {
	case EndpointChatCompletions:
		return "/v1/chat/completions"
	case EndpointCompletions:
		return "/v1/completions"
	case EndpointEmbeddings:
		return "/v1/embeddings"
	case EndpointResponses:
		return "/v1/responses"
	case EndpointModels:
		return "/v1/models"
	}
	return ""
}

// Operation is the OpenTelemetry GenAI operation name (gen_ai.operation.name)
// of the endpoint. The Responses API has no name in the semantic conventions;
// "responses" is Envoy AI Gateway's.
func (e Endpoint) Operation() string {
	switch e {
	case EndpointChatCompletions:
		return "chat"
	case EndpointCompletions:
		return "text_completion"
	case EndpointEmbeddings:
		return "embeddings"
	case EndpointResponses:
		return "responses"
	case EndpointModels:
		return "list_models"
	}
	return ""
}

// hasBody reports whether the endpoint takes a JSON request body we parse.
func (e Endpoint) hasBody() bool {
	return e >= EndpointChatCompletions && e <= EndpointResponses
}

// promptField is the top-level request field every request to the endpoint
// must carry; its value is also the prompt the endpoint picker hashes.
func (e Endpoint) promptField() string {
	switch e {
	case EndpointChatCompletions:
		return "messages"
	case EndpointCompletions:
		return "prompt"
	case EndpointEmbeddings, EndpointResponses:
		return "input"
	}
	return ""
}

// streamsUsageOnRequest reports whether the endpoint reports streamed usage
// only when asked with stream_options.include_usage. The Responses API always
// reports it in its response.completed event.
func (e Endpoint) streamsUsageOnRequest() bool {
	return e == EndpointChatCompletions || e == EndpointCompletions
}
