package picker

import (
	"errors"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Request is what Pick needs to know about one request. The caller (the
// module) fills it from ai_router's parse when that filter ran, or from
// RequestFromBody when the picker runs alone.
type Request struct {
	// Model is the requested model; for LoRA, the adapter name.
	Model string
	// Prompt is the prompt's bytes for prefix affinity: the raw JSON of the
	// chat "messages" array, or the raw JSON of a completion's "prompt".
	// Pick reads it and keeps no reference after it returns.
	Prompt []byte
	// Objective is the x-gateway-inference-objective header, mapped to a
	// priority by the pool's "priorities".
	Objective string
	// Subset is the subset hint (x-gateway-destination-endpoint-subset): only
	// these ip:port may be picked. It applies when HasSubset is set; an empty
	// or non-matching hint gives StatusNoCapacity.
	Subset    []string
	HasSubset bool
}

// ErrNoModel is returned by RequestFromBody for a body without a string
// "model": the caller replies 400.
var ErrNoModel = errors.New(`request body has no "model" string`)

// RequestFromBody reads the model and prompt from an OpenAI chat or
// completions request body with gjson, without copying or decoding the rest.
// The returned Prompt points into body: keep body unchanged while using it
// (Model is a copy).
// It does not validate the whole document; that is ai_router's job.
func RequestFromBody(body []byte) (Request, error) {
	// gjson works on strings; this view shares body's memory (GetBytes would
	// copy every result). One pass over the top-level keys.
	doc := unsafe.String(unsafe.SliceData(body), len(body))
	var model, messages, prompt gjson.Result
	gjson.Parse(doc).ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "model":
			model = value
		case "messages":
			messages = value
		case "prompt":
			prompt = value
		}
		return true
	})
	if model.Type != gjson.String || model.Str == "" {
		return Request{}, ErrNoModel
	}
	r := Request{Model: strings.Clone(model.Str)}
	switch {
	case messages.IsArray():
		r.Prompt = rawBytes(body, messages)
	case prompt.Exists():
		r.Prompt = rawBytes(body, prompt)
	}
	return r, nil
}

// rawBytes returns the slice of body holding r's raw JSON.
func rawBytes(body []byte, r gjson.Result) []byte {
	if r.Index > 0 && r.Index+len(r.Raw) <= len(body) {
		return body[r.Index : r.Index+len(r.Raw) : r.Index+len(r.Raw)]
	}
	return []byte(r.Raw)
}
