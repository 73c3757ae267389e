package transform

// azureTranslator sends OpenAI requests to Azure OpenAI: the path names the
// deployment and carries api-version, the key goes in the api-key header.
// Bodies, responses and errors are OpenAI's, so everything else is the
// OpenAI-compatible translator's (model override and restore, usage).
type azureTranslator struct {
	openAITranslator
}

func (t *azureTranslator) TranslateRequest(req UpstreamRequest) (TranslatedRequest, error) {
	t.endpoint = EndpointOf(req.Path)
	var op string
	switch t.endpoint {
	case EndpointChatCompletions:
		op = "/chat/completions"
	case EndpointCompletions:
		op = "/completions"
	case EndpointEmbeddings:
		op = "/embeddings"
	case EndpointResponses: // Azure's Responses API takes the deployment in the body's model
	default:
		return TranslatedRequest{}, unknownURL(req.Path, "an Azure OpenAI backend serves chat/completions, completions, embeddings and responses")
	}
	body, err := t.overrideModel(req.Body, t.backend.Deployment == "")
	if err != nil {
		return TranslatedRequest{}, err
	}
	// The client's query string is dropped: api-version is the backend's.
	p := []byte(t.backend.PathPrefix)
	if op == "" {
		p = append(p, "/responses"...)
	} else {
		deployment := t.backend.Deployment
		if deployment == "" {
			deployment = t.sentModel()
		}
		p = append(p, "/deployments/"...)
		p = appendPathSegment(p, deployment)
		p = append(p, op...)
	}
	p = append(p, "?api-version="...)
	p = append(p, t.backend.APIVersion...)
	h := make([]HeaderEdit, 0, editsCap)
	h = append(h, HeaderEdit{Name: ":path", Value: string(p)}, contentLength(len(body)))
	h = t.jsonContentType(h)
	h = credentialEdits(h, HeaderEdit{Name: "api-key", Value: t.backend.apiKey})
	h = append(h, acceptEncoding(req.AcceptEncoding, t.override))
	return TranslatedRequest{Headers: h, Body: body}, nil
}
