package transform

import (
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// openAITranslator sends OpenAI requests to an OpenAI-compatible backend:
// the path's "/v1" becomes the backend's prefix, the model may be
// overridden (and is restored in the response, with the ai_router's
// ModelRestorer), and the API key goes as a bearer token.
type openAITranslator struct {
	backend  *Backend
	endpoint Endpoint
	model    string // the request's model, named again in responses when overridden
	override bool   // the body's model was replaced
	status   int
	meter    *Meter
	restorer *ModelRestorer
	report   Report
	done     bool
	noUsage  bool                 // SkipUsage: no meter
	edits    [editsCap]HeaderEdit // the request's edits: no allocation of their own
	num      [20]byte             // the content-length edit's digits
}

// decimal is n in decimal, in t's own memory: the request's edits are
// applied before the translator is dropped.
func (t *openAITranslator) decimal(n int) string {
	b := strconv.AppendInt(t.num[:0], int64(n), 10)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (t *openAITranslator) TranslateRequest(req UpstreamRequest) (TranslatedRequest, error) {
	path, ok := t.upstreamPath(req.Path)
	if !ok {
		return TranslatedRequest{}, unknownURL(req.Path, "this OpenAI-compatible backend serves /v1 paths only")
	}
	t.endpoint = EndpointOf(req.Path)
	body, err := t.overrideModel(req.Body, false)
	if err != nil {
		return TranslatedRequest{}, err
	}
	h := t.edits[:0]
	h = append(h, HeaderEdit{Name: ":path", Value: path})
	h = append(h, HeaderEdit{Name: "content-length", Value: t.decimal(len(body))})
	h = t.jsonContentType(h)
	h = credentialEdits(h, HeaderEdit{Name: "authorization", Value: t.backend.bearer})
	// Compressed bodies cannot be edited: an overridden model needs plain ones.
	h = append(h, acceptEncoding(req.AcceptEncoding, t.override))
	return TranslatedRequest{Headers: h, Body: body}, nil
}

// upstreamPath maps a request path to the backend's, from its normal form
// (NormalizePath: the route the server takes, so that no other spelling
// escapes the prefix): a "/v1" path gets the backend's prefix instead;
// with the default prefix every path passes (vLLM's /score, /tokenize,
// ...); with another, only /v1 paths do. The query string is kept.
func (t *openAITranslator) upstreamPath(raw string) (string, bool) {
	p := NormalizePath(raw)
	query := ""
	if i := strings.IndexAny(raw, "?#"); i >= 0 && raw[i] == '?' {
		query = raw[i:]
		if j := strings.IndexByte(query, '#'); j >= 0 {
			query = query[:j]
		}
	}
	if rest, ok := strings.CutPrefix(p, "/v1"); ok && (rest == "" || rest[0] == '/') {
		if t.backend.PathPrefix == defaultOpenAIPrefix && query == "" {
			return p, true // the same path: no new string
		}
		return t.backend.PathPrefix + rest + query, true
	}
	if t.backend.PathPrefix == defaultOpenAIPrefix && strings.HasPrefix(p, "/") {
		return p + query, true
	}
	return "", false
}

// overrideModel reads the request's model (when the backend overrides it,
// or needModel) and, when the backend has its own name for it, returns a
// copy of body with that name in its place.
func (t *openAITranslator) overrideModel(body []byte, needModel bool) ([]byte, error) {
	switch {
	case t.backend.Model == "" && !needModel,
		t.endpoint == EndpointNone, t.endpoint == EndpointModels, t.endpoint == EndpointInvocations:
		return body, nil
	}
	r, err := ParseRequest(t.endpoint, body)
	if err != nil {
		return nil, err
	}
	t.model = strings.Clone(r.Model)
	if t.backend.Model == "" || t.backend.Model == r.Model {
		return body, nil
	}
	t.override = true
	out, _ := applyEdits(body, []edit{{r.model.start, r.model.end, gjson.AppendJSONString(nil, t.backend.Model)}}, noSpan)
	return out, nil
}

// jsonContentType sets content-type for the endpoints whose bodies are
// JSON (ParseRequest checked them): another schema's attempt may have set
// it, and some clients send JSON under another type. Other paths (file
// uploads) keep theirs.
func (t *openAITranslator) jsonContentType(h []HeaderEdit) []HeaderEdit {
	if t.endpoint == EndpointNone || t.endpoint == EndpointModels {
		return h
	}
	return append(h, HeaderEdit{Name: "content-type", Value: "application/json"})
}

// sentModel is the model name the backend receives.
func (t *openAITranslator) sentModel() string {
	if t.backend.Model != "" {
		return t.backend.Model
	}
	return t.model
}

func (t *openAITranslator) TranslateResponseHeaders(resp UpstreamResponse) (TranslatedResponseHeaders, error) {
	t.status = resp.Status
	out := TranslatedResponseHeaders{Status: resp.Status}
	if !isSuccess(resp.Status) {
		return out, nil // OpenAI-shaped already
	}
	if !t.noUsage {
		t.meter = NewMeter(t.endpoint, resp.Status, resp.ContentType, resp.ContentEncoding)
	}
	if t.override && identityEncoding(resp.ContentEncoding) {
		t.restorer = NewModelRestorer(t.model, resp.ContentType)
		out.Headers = append(out.Headers, HeaderEdit{Name: "content-length", Remove: true})
	}
	return out, nil
}

func (t *openAITranslator) TranslateResponseBody(dst, chunk []byte, endOfStream bool) ([]byte, bool) {
	if t.meter != nil && !t.done {
		t.meter.Write(chunk, time.Now())
		if endOfStream {
			t.report, t.done = t.meter.Finish(time.Now()), true
		}
	}
	if t.restorer == nil {
		return append(dst, chunk...), false
	}
	return t.restorer.Write(dst, chunk)
}

// SkipUsage tells the translator that no one will ask for Usage: the
// answer passes in OpenAI's shape, and ai_router meters it anyway. Without
// a meter the translator reads nothing of a plain answer.
func (t *openAITranslator) SkipUsage() { t.noUsage = true }

// PassesBody reports, after TranslateResponseHeaders, whether the body
// goes out as it came: nothing to meter, no model to name back.
func (t *openAITranslator) PassesBody() bool { return t.meter == nil && t.restorer == nil }

var (
	_ UsageSkipper = (*openAITranslator)(nil)
	_ BodyPasser   = (*openAITranslator)(nil)
)

func (t *openAITranslator) Usage() (Usage, bool) {
	if !t.done {
		return Usage{}, false
	}
	return t.report.Usage, t.report.HasUsage
}

// TranslateError keeps an OpenAI error body's fields, and words any other
// body (a proxy's HTML page, a cut body) as a generic error.
func (t *openAITranslator) TranslateError(status int, body []byte) *Error {
	return openAIError(status, body)
}

func openAIError(status int, body []byte) *Error {
	e := gjson.GetBytes(body, "error")
	if !gjson.ValidBytes(body) || !e.IsObject() || e.Get("message").Type != gjson.String {
		return upstreamError(status, "upstream returned status "+strconv.Itoa(status))
	}
	out := upstreamError(status, e.Get("message").Str)
	if v := e.Get("type"); v.Type == gjson.String {
		out.Type = v.Str
	}
	if v := e.Get("code"); v.Type == gjson.String {
		out.Code = v.Str
	}
	if v := e.Get("param"); v.Type == gjson.String {
		out.Param = v.Str
	}
	return out
}

func unknownURL(path, why string) *Error {
	p := path
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return &Error{Status: 404, Type: invalidRequest, Code: "unknown_url", Message: "Invalid URL (" + p + "): " + why}
}

func contentLength(n int) HeaderEdit {
	return HeaderEdit{Name: "content-length", Value: strconv.Itoa(n)}
}

func bearer(key string) string {
	if key == "" {
		return ""
	}
	return "Bearer " + key
}

// providerHeaders are the headers that carry credentials or provider
// options. Every translation sets the ones its backend uses and removes the
// others: a client's own credentials never reach a provider, and a retry
// that reaches another backend finds none of the previous attempt's.
var providerHeaders = [...]string{"authorization", "x-api-key", "api-key", "anthropic-version", "anthropic-beta", "x-goog-api-key", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}

// editsCap is room for every header edit a translation makes (its own
// few and one per provider header), so the list is allocated once.
const editsCap = 6 + len(providerHeaders)

// credentialEdits appends an edit for each of providerHeaders: set as in
// set when it is there with a value, else removed.
func credentialEdits(dst []HeaderEdit, set ...HeaderEdit) []HeaderEdit {
next:
	for _, h := range providerHeaders {
		for _, s := range set {
			if s.Name == h && s.Value != "" {
				dst = append(dst, s)
				continue next
			}
		}
		dst = append(dst, HeaderEdit{Name: h, Remove: true})
	}
	return dst
}

// acceptEncoding is a translation's accept-encoding edit: removed when the
// response is read to be edited (plain), else the request's original value
// again, which an earlier attempt to another backend may have removed.
func acceptEncoding(original string, plain bool) HeaderEdit {
	if plain || original == "" {
		return HeaderEdit{Name: "accept-encoding", Remove: true}
	}
	return HeaderEdit{Name: "accept-encoding", Value: original}
}

func identityEncoding(ce string) bool {
	ce = strings.TrimSpace(ce)
	return ce == "" || strings.EqualFold(ce, "identity")
}
