package transform

// Route tells the module what to do with a request from its method and
// path, before any body arrives. The path is read as the servers behind us
// route it (NormalizePath).
//
//   - EndpointNone: pass the request through untouched: its path is in
//     PassThroughPaths, or it is GET /v1/models without a model list;
//   - EndpointModels: reply 200 with ModelsBody (only when models are listed);
//   - any other endpoint: buffer the body and call Decide;
//   - an error to reply with: 404 unknown_url for any other path (Envoy AI
//     Gateway's answer), 405 for a known endpoint called with the wrong
//     method.
func (c *Config) Route(method, path string) (Endpoint, error) {
	norm := NormalizePath(path)
	ep := endpointOfPath[norm]
	switch {
	case ep == EndpointModels && !c.ServesModels():
		return EndpointNone, nil
	case ep == EndpointModels && method != "GET" && method != "HEAD":
		return ep, methodNotAllowed(method, norm)
	case ep == EndpointModels:
		return ep, nil
	case ep.hasBody() && method != "POST":
		return ep, methodNotAllowed(method, norm)
	case ep.hasBody():
		return ep, nil
	case c.passThru.match(norm):
		return EndpointNone, nil
	}
	return EndpointNone, &Error{Status: 404, Type: invalidRequest, Code: "unknown_url",
		Message: "Invalid URL (" + method + " " + clip(norm, 128) + ")"}
}

// clip bounds what a reply echoes of client input.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func methodNotAllowed(method, path string) *Error {
	return &Error{Status: 405, Type: invalidRequest, Code: "method_not_allowed",
		Message: clip(method, 32) + " is not allowed on " + path}
}

// CheckBodySize returns the 413 error when a body of n bytes (buffered so far,
// or announced by content-length) is over the limit.
func (c *Config) CheckBodySize(n int64) error {
	if n > c.MaxRequestBodyBytes {
		return BodyTooLarge(c.MaxRequestBodyBytes)
	}
	return nil
}

// Decision is what to do with a request body.
type Decision struct {
	Endpoint    Endpoint
	Model       string // what the client asked for: x-ai-eg-model, "original model"
	TargetModel string // what the server is asked for: "request model"; == Model unless rewritten
	Stream      bool
	// IncludeUsage reports whether a streamed response will carry usage
	// (the client asked, or Decide asked for it).
	IncludeUsage bool
	// UsageInjected: Decide asked for the usage chunk the client did not ask
	// for; strip it from the client's stream (UsageChunkStripper).
	UsageInjected bool
	MaxTokens     uint64 // Request.MaxTokens
	// Body is the body to send upstream when it had to change (model
	// rewritten, include_usage added); nil when the original body goes
	// through as is. Update content-length when it is set.
	Body []byte
	// Prompt is the endpoint's prompt for prefix hashing (see Request). It
	// aliases Body when Body is set, else the body given to Decide.
	Prompt []byte
}

// Decide parses and checks a buffered request body for endpoint ep, picks
// the model to send upstream and edits the body when needed. rewriteHeader is
// the value of the ModelRewriteHeader request header, or "". An error is an
// *Error to reply with (400, 404 model_not_found or 413).
//
// The strings of the Decision never alias body; Prompt does unless Body is
// set.
func (c *Config) Decide(ep Endpoint, body []byte, rewriteHeader string) (Decision, error) {
	if err := c.CheckBodySize(int64(len(body))); err != nil {
		return Decision{}, err
	}
	r, err := ParseRequest(ep, body)
	if err != nil {
		return Decision{}, err
	}
	ep = r.Endpoint // EndpointInvocations resolved
	model, listed := c.known[r.Model]
	if !listed && c.ServesModels() {
		return Decision{}, &Error{Status: 404, Type: invalidRequest, Code: "model_not_found", Param: "model",
			Message: "The model `" + r.Model + "` does not exist."}
	}
	if !listed {
		model = c.seen.intern(r.Model) // r.Model aliases body
	}
	target, rewrite := c.target(model, rewriteHeader)
	askUsage := r.Stream && !r.IncludeUsage && c.TokenAccounting && ep.streamsUsageOnRequest()
	d := Decision{
		Endpoint:     ep,
		Model:        model,
		TargetModel:  target,
		Stream:       r.Stream,
		IncludeUsage: r.Stream && (r.IncludeUsage || askUsage || ep == EndpointResponses),
		Prompt:       r.Prompt,
	}
	d.UsageInjected, d.MaxTokens = askUsage, r.MaxTokens
	if rewrite || askUsage {
		var prompt span
		d.Body, prompt = applyEdits(body, editRequest(body, &r, target, rewrite, askUsage), r.prompt)
		if prompt.ok() {
			d.Prompt = d.Body[prompt.start:prompt.end:prompt.end]
		}
	}
	return d, nil
}
