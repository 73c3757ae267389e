package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Request is what the ai_router reads from a request body.
type Request struct {
	Endpoint     Endpoint
	Model        string // the model the client asked for
	Stream       bool   // "stream": true
	IncludeUsage bool   // "stream_options": {"include_usage": true}, as the client sent it
	// MaxTokens is the largest of max_tokens, max_completion_tokens and
	// max_output_tokens (0: none, or not a non-negative integer), for
	// budget reservations and usage estimates.
	MaxTokens uint64

	// Prompt is the value of the endpoint's required field, for the endpoint
	// picker's prefix hashing: the raw JSON of "messages" for chat, of
	// "prompt" for completions and of "input" for embeddings and responses.
	// A JSON string is given without its quotes (escapes are kept).
	Prompt []byte

	// Where the fields sit in the body, for byte edits.
	model             span // raw value of "model", quotes included
	streamOptions     span // raw value of "stream_options"
	streamOptionsNull bool
	includeUsage      span // raw value of "stream_options"."include_usage"
	open              int  // offset of the body's opening '{'
	prompt            span // Prompt
}

// span is a run of bytes in a body; start < 0 when the field is absent.
type span struct{ start, end int }

var noSpan = span{-1, -1}

func (s span) ok() bool { return s.start >= 0 }

// ParseRequest reads and checks a request body for endpoint ep in one pass
// over the body (scanTopLevel), without unmarshalling it; gjson then reads
// the few values found. Any error is an *Error with status 400.
//
// Request.Model and Request.Prompt alias body: copy them if body is about to
// change. ParseRequest does not allocate on success.
func ParseRequest(ep Endpoint, body []byte) (Request, error) {
	if ep == EndpointInvocations {
		ep = invocationEndpoint(body)
	}
	r := Request{Endpoint: ep, model: noSpan, streamOptions: noSpan, includeUsage: noSpan, prompt: noSpan}
	field := ep.promptField()
	usageOnRequest := ep.streamsUsageOnRequest()
	var (
		err       *Error
		seen      uint8
		prompt    gjson.Result
		soEmpty   bool // stream_options is null or {}
		storedRef bool // Responses API: previous_response_id, prompt or conversation
	)
	valid := scanTopLevel(body, func(k, v span) bool {
		if !k.ok() { // an array: reported below
			return false
		}
		var bit uint8
		switch name := keyName(body, k); {
		case name == "model":
			bit = 1
		case name == "stream":
			bit = 2
		case name == "stream_options" && usageOnRequest:
			bit = 4
		case name == field && field != "":
			bit = 8
		case name == "max_tokens" || name == "max_completion_tokens" || name == "max_output_tokens":
			r.MaxTokens = max(r.MaxTokens, count(gjson.Parse(unsafeString(body[v.start:v.end]))))
			return true
		case ep == EndpointResponses && (name == "previous_response_id" || name == "prompt" || name == "conversation"):
			// Each lets a request go without input (the Responses API
			// then continues a stored response, prompt or conversation).
			storedRef = storedRef || body[v.start] != 'n'
			return true
		default:
			return true
		}
		// JSON parsers disagree on which duplicate wins; a client could
		// otherwise route as one model and be served by another.
		if seen&bit != 0 {
			name := keyName(body, k)
			err = badRequest("duplicate_key", name, "duplicate key %q in request body", name)
			return false
		}
		seen |= bit
		value := gjson.Parse(unsafeString(body[v.start:v.end]))
		switch bit {
		case 1:
			if value.Type != gjson.String {
				err = badRequest("invalid_type", "model", "model must be a string")
			} else if e := checkModelName(value.Str); e != nil {
				err = badRequest("invalid_value", "model", "%s", e.Error())
			}
			r.Model, r.model = value.Str, v
		case 2:
			switch value.Type {
			case gjson.True:
				r.Stream = true
			case gjson.False, gjson.Null:
			default:
				err = badRequest("invalid_type", "stream", "stream must be a boolean")
			}
		case 4:
			r.streamOptions = v
			soEmpty = value.Type == gjson.Null || value.IsObject() && emptyContainer(value.Raw)
			err = r.readStreamOptions(value, v.start)
		case 8:
			prompt, r.prompt = value, v
		}
		return err == nil
	})
	switch {
	case !valid:
		return r, badRequest("invalid_json", "", "request body is not valid JSON")
	case body[skipSpace(body, 0)] != '{':
		return r, badRequest("invalid_json", "", "request body must be a JSON object")
	case err != nil:
		return r, err
	}
	r.open = skipSpace(body, 0)
	r.Stream = r.Stream && ep != EndpointEmbeddings // embeddings never stream
	if seen&1 == 0 {
		return r, badRequest("missing_required_parameter", "model", "you must provide a model parameter")
	}
	if seen&4 != 0 && !soEmpty && !r.Stream {
		// OpenAI and vLLM refuse it too: without a stream there is no
		// usage chunk to ask for.
		return r, badRequest("invalid_value", "stream_options", "stream_options is only allowed when stream is true")
	}
	if field == "" || seen&8 == 0 && storedRef {
		return r, nil // no prompt to hash
	}
	if seen&8 == 0 {
		return r, badRequest("missing_required_parameter", field, "missing required parameter: %q", field)
	}
	if err := checkPrompt(ep, field, prompt); err != nil {
		return r, err
	}
	if prompt.Type == gjson.String {
		r.prompt = span{r.prompt.start + 1, r.prompt.end - 1}
	}
	r.Prompt = body[r.prompt.start:r.prompt.end:r.prompt.end]
	return r, nil
}

// invocationEndpoint is the endpoint vLLM serves a POST /invocations body
// with: chat when it has messages, else completions when it has prompt, else
// embeddings when it has input. Any other body (and SGLang, which serves only
// chat there) is read as chat, so that ParseRequest reports what is missing.
func invocationEndpoint(body []byte) Endpoint {
	var has uint8
	scanTopLevel(body, func(k, _ span) bool {
		if !k.ok() {
			return false
		}
		switch keyName(body, k) {
		case "messages":
			has |= 1
		case "prompt":
			has |= 2
		case "input":
			has |= 4
		}
		return true
	})
	switch {
	case has&1 == 0 && has&2 != 0:
		return EndpointCompletions
	case has&1 == 0 && has&4 != 0:
		return EndpointEmbeddings
	}
	return EndpointChatCompletions
}

// keyName returns the name of the object key whose raw JSON (quotes
// included) is body[k.start:k.end]; without escapes, without copying.
func keyName(body []byte, k span) string {
	if !hasBackslash(body, k.start+1, k.end-1) {
		return unsafeString(body[k.start+1 : k.end-1])
	}
	return gjson.Parse(unsafeString(body[k.start:k.end])).Str
}

// hasBackslash reports whether body[start:end] holds a '\\', a word at a
// time: a key's last bytes are read in the word that ends with them.
func hasBackslash(body []byte, start, end int) bool {
	for ; start+8 <= end; start += 8 {
		if backslashMarks(binary.LittleEndian.Uint64(body[start:])) != 0 {
			return true
		}
	}
	if n := end - start; n > 0 && end >= 8 {
		return backslashMarks(binary.LittleEndian.Uint64(body[end-8:]))>>(64-8*n) != 0
	}
	for ; start < end; start++ {
		if body[start] == '\\' {
			return true
		}
	}
	return false
}

// backslashMarks marks (high bit) exactly the '\\' bytes of a word: no borrow
// crosses bytes, so marks of bytes before a key cannot reach it.
func backslashMarks(v uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	t := v ^ (ones * '\\')
	return ^((t&low7 + low7) | t) & highs
}

// readStreamOptions reads stream_options, whose value v starts at offset
// off in the body.
func (r *Request) readStreamOptions(v gjson.Result, off int) *Error {
	if v.Type == gjson.Null {
		r.streamOptionsNull = true
		return nil
	}
	if !v.IsObject() {
		return badRequest("invalid_type", "stream_options", "stream_options must be an object")
	}
	var err *Error
	v.ForEach(func(k, v gjson.Result) bool {
		if k.Str != "include_usage" {
			return true
		}
		if r.includeUsage.ok() {
			err = badRequest("duplicate_key", "stream_options.include_usage", "duplicate key \"include_usage\" in stream_options")
			return false
		}
		r.includeUsage = span{off + v.Index, off + v.Index + len(v.Raw)}
		switch v.Type {
		case gjson.True:
			r.IncludeUsage = true
		case gjson.False, gjson.Null:
		default:
			err = badRequest("invalid_type", "stream_options.include_usage", "stream_options.include_usage must be a boolean")
		}
		return err == nil
	})
	return err
}

// checkPrompt checks the type of the endpoint's required field.
func checkPrompt(ep Endpoint, field string, v gjson.Result) *Error {
	switch ep {
	case EndpointChatCompletions:
		if !v.IsArray() {
			return badRequest("invalid_type", field, "%s must be an array", field)
		}
		if emptyContainer(v.Raw) {
			return badRequest("invalid_value", field, "%s must hold at least one message", field)
		}
	default:
		if v.Type != gjson.String && !v.IsArray() {
			return badRequest("invalid_type", field, "%s must be a string or an array", field)
		}
		if v.IsArray() && emptyContainer(v.Raw) {
			return badRequest("invalid_value", field, "%s must not be empty", field)
		}
	}
	return nil
}

// emptyContainer reports whether raw, a JSON array or object, has no element.
func emptyContainer(raw string) bool {
	for i := 1; i < len(raw); i++ {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return raw[i] == ']' || raw[i] == '}'
		}
	}
	return true
}

// unsafeString views b as a string without copying. The caller must not
// change b while the string is in use.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// MaxModelNameBytes caps the length of a requested model name: it becomes
// the x-ai-eg-model header and appears in error messages, and no served
// model name comes near it (Hugging Face repository ids are at most 96
// characters).
const MaxModelNameBytes = 256

// checkModelName says what is wrong with a model name, if anything.
func checkModelName(name string) error {
	switch {
	case name == "":
		return errors.New("model must not be empty")
	case len(name) > MaxModelNameBytes:
		return fmt.Errorf("model must be at most %d bytes long", MaxModelNameBytes)
	case !printable(name):
		// It becomes a header value (x-ai-eg-model).
		return errors.New("model must be UTF-8 text without control characters")
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return false
		}
	}
	return true
}
