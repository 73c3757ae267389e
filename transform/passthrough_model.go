package transform

import (
	"strings"

	"github.com/tidwall/gjson"
)

// ParsesBody reports whether requests to e carry a JSON body that
// ParseRequest reads (chat, completions, embeddings, responses). A picker
// that runs without ai_router parses exactly these, with ParseRequest, so
// that both deployments hash the same prompt bytes.
func (e Endpoint) ParsesBody() bool { return e.hasBody() }

// IsJSON reports whether a content-type header value names JSON
// (application/json or a +json type).
func IsJSON(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// PassThroughModel returns the top-level "model" of a JSON body sent to a
// path the ai_router passes through (EndpointNone: vLLM's /v1/rerank or
// /tokenize, OpenAI's /v1/audio/speech...), for the endpoint picker's LoRA
// affinity. Such a body is not ours to judge, so this never fails: it
// returns "" for a body that is not a valid JSON object, a duplicated
// "model", or a model that is not a non-empty printable string. The result
// is a copy.
func PassThroughModel(body []byte) string {
	var (
		model string
		seen  bool
		dup   bool
	)
	valid := scanTopLevel(body, func(k, v span) bool {
		if !k.ok() || keyName(body, k) != "model" {
			return k.ok()
		}
		if seen {
			dup = true
			return false
		}
		seen = true
		if value := gjson.Parse(unsafeString(body[v.start:v.end])); value.Type == gjson.String {
			model = value.Str
		}
		return true
	})
	if !valid || dup || body[skipSpace(body, 0)] != '{' || model == "" || !printable(model) {
		return ""
	}
	return strings.Clone(model)
}
