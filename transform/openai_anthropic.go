package transform

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// anthropicTranslator sends OpenAI chat completions to Anthropic's Messages
// API (/v1/messages) and turns the answers, JSON or streamed, back into
// OpenAI's chat completion shapes. The request side is in this file, the
// JSON response and errors in openai_anthropic_response.go, the stream in
// openai_anthropic_stream.go.
type anthropicTranslator struct {
	backend *Backend
	now     func() time.Time // for "created"; time.Now but in tests

	// From the request.
	model        string // the request's model (named in responses when overridden)
	override     bool
	includeUsage bool // the client asked for a usage chunk

	// From the response.
	resp    rewrittenResponse
	created int64
	stream  anthropicStream

	raw           [4]uint64 // Anthropic's input, cache read, cache creation and output tokens
	usage         Usage
	cacheCreation uint64
	hasUsage      bool

	// Kept across exchanges (reset).
	req requestBuffers
	ans answerBuffers
}

// reset sets t as a new translator for an exchange with b, keeping only
// its emptied buffers.
func (t *anthropicTranslator) reset(b *Backend, now func() time.Time) {
	*t = anthropicTranslator{backend: b, now: now, resp: t.resp.recycled(), stream: t.stream.recycled(),
		req: t.req.recycled(), ans: t.ans.recycled()}
}

type responseMode uint8

const (
	modeJSON responseMode = iota
	modeStream
	modeError
)

func (t *anthropicTranslator) TranslateRequest(req UpstreamRequest) (TranslatedRequest, error) {
	if EndpointOf(req.Path) != EndpointChatCompletions {
		return TranslatedRequest{}, unknownURL(req.Path, "an Anthropic backend serves /v1/chat/completions only")
	}
	r, err := ParseRequest(EndpointChatCompletions, req.Body)
	if err != nil {
		return TranslatedRequest{}, err
	}
	t.model = t.req.setModel(r.Model)
	t.override = t.backend.Model != "" && t.backend.Model != r.Model
	t.includeUsage = r.Stream && r.IncludeUsage
	body, e := t.requestBody(req.Body, r.Stream)
	if e != nil {
		return TranslatedRequest{}, e
	}
	path := t.req.setPath(append(append(t.req.path[:0], t.backend.PathPrefix...), "/messages"...))
	h := t.req.startEdits()
	h = append(h,
		HeaderEdit{Name: ":path", Value: path},
		t.req.contentLength(len(body)),
		HeaderEdit{Name: "content-type", Value: "application/json"},
		// The response is read to be translated: it must come plain.
		HeaderEdit{Name: "accept-encoding", Remove: true},
	)
	h = credentialEdits(h,
		HeaderEdit{Name: "x-api-key", Value: t.backend.apiKey},
		HeaderEdit{Name: "anthropic-version", Value: t.backend.AnthropicVersion})
	return TranslatedRequest{Headers: h, Body: body}, nil
}

// samplingVersion is the first anthropic-version that refuses temperature,
// top_p and top_k (400 even at their defaults).
const samplingVersion = "2026-10-21"

// samplingParams reports whether the backend's API version takes sampling
// parameters. Later versions get requests without them: OpenAI clients send
// a temperature as a matter of course, and a 400 for each would make the
// backend unusable.
func (b *Backend) samplingParams() bool { return b.AnthropicVersion < samplingVersion }

// CacheCreationInputTokens is the number of input tokens Anthropic wrote to
// its prompt cache, once the body has carried usage. They count in
// Usage().InputTokens too; Usage has no field of its own for them.
func (t *anthropicTranslator) CacheCreationInputTokens() uint64 { return t.cacheCreation }

// requestBody writes the Messages API body for an OpenAI chat request (a
// valid JSON object: ParseRequest checked it).
func (t *anthropicTranslator) requestBody(body []byte, stream bool) ([]byte, *Error) {
	c := readChatRequest(body)
	if e := c.refuseUnsupported(); e != nil {
		return nil, e
	}
	out := t.req.startBody(len(body) + 256)
	out = append(out, `{"model":`...)
	if t.backend.Model != "" {
		out = gjson.AppendJSONString(out, t.backend.Model)
	} else {
		out = gjson.AppendJSONString(out, t.model)
	}
	out = append(out, `,"max_tokens":`...)
	var e *Error
	if out, e = c.appendMaxTokens(out, t.backend.MaxTokens); e != nil {
		return nil, e
	}
	if out, e = appendMessages(out, c.messages); e != nil {
		return nil, e
	}
	if out, e = c.appendStop(out); e != nil {
		return nil, e
	}
	for _, f := range [...]struct {
		name string
		v    gjson.Result
	}{{"temperature", c.temperature}, {"top_p", c.topP}, {"top_k", c.topK}} {
		if !f.v.Exists() || f.v.Type == gjson.Null {
			continue
		}
		if f.v.Type != gjson.Number {
			return nil, badRequest("invalid_type", f.name, "%s must be a number", f.name)
		}
		if !t.backend.samplingParams() {
			continue
		}
		out = append(append(append(out, `,"`...), f.name...), `":`...)
		out = append(out, f.v.Raw...)
	}
	if stream {
		out = append(out, `,"stream":true`...)
	}
	if out, e = c.appendTools(out); e != nil {
		return nil, e
	}
	if c.user.Type == gjson.String && c.user.Str != "" {
		out = append(out, `,"metadata":{"user_id":`...)
		out = append(append(out, c.user.Raw...), '}')
	}
	t.req.body = append(out, '}')
	return t.req.body, nil
}

// refuseUnsupported answers 400 to what Anthropic cannot do, rather than
// silently doing something else.
func (c *chatRequest) refuseUnsupported() *Error {
	if c.n.Exists() && c.n.Type != gjson.Null && (c.n.Type != gjson.Number || c.n.Raw != "1") {
		return badRequest("unsupported_value", "n", "n: an Anthropic backend returns one choice; n must be 1")
	}
	if c.logprobs.Type == gjson.True {
		return badRequest("unsupported_value", "logprobs", "logprobs are not available from an Anthropic backend")
	}
	if rf := c.responseFormat; rf.Exists() && rf.Type != gjson.Null {
		if typ := rf.Get("type"); typ.Type != gjson.String || typ.Str != "text" {
			return badRequest("unsupported_value", "response_format", "response_format: only type text is available from an Anthropic backend")
		}
	}
	return nil
}

// appendMaxTokens writes max_completion_tokens, else max_tokens, else the
// backend's default: Anthropic requires one.
func (c *chatRequest) appendMaxTokens(out []byte, def int64) ([]byte, *Error) {
	raw, ok, e := c.maxOutputTokens()
	switch {
	case e != nil:
		return nil, e
	case !ok:
		return strconv.AppendInt(out, def, 10), nil
	}
	return append(out, raw...), nil
}

// positiveInteger reports whether a JSON number is written as an integer
// greater than zero, within int64.
func positiveInteger(raw string) bool {
	n, err := strconv.ParseInt(raw, 10, 64)
	return err == nil && n > 0
}

func (c *chatRequest) appendStop(out []byte) ([]byte, *Error) {
	switch v := c.stop; {
	case !v.Exists() || v.Type == gjson.Null:
	case v.Type == gjson.String:
		out = append(append(append(out, `,"stop_sequences":[`...), v.Raw...), ']')
	case v.IsArray():
		out = append(out, `,"stop_sequences":[`...)
		var e *Error
		i := 0
		v.ForEach(func(_, s gjson.Result) bool {
			if s.Type != gjson.String {
				e = badRequest("invalid_type", "stop", "stop must be a string or an array of strings")
				return false
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, s.Raw...)
			i++
			return true
		})
		if e != nil {
			return nil, e
		}
		out = append(out, ']')
	default:
		return nil, badRequest("invalid_type", "stop", "stop must be a string or an array of strings")
	}
	return out, nil
}

// appendTools writes tools and tool_choice (with parallel_tool_calls as
// disable_parallel_tool_use).
func (c *chatRequest) appendTools(out []byte) ([]byte, *Error) {
	if v := c.tools; v.Exists() && v.Type != gjson.Null {
		if !v.IsArray() {
			return nil, badRequest("invalid_type", "tools", "tools must be an array")
		}
		out = append(out, `,"tools":[`...)
		var e *Error
		j := 0
		v.ForEach(func(_, tool gjson.Result) bool {
			if typ := tool.Get("type"); typ.Type != gjson.String || typ.Str != "function" {
				e = fieldError("unsupported_value", "only function tools are available from an Anthropic backend", "tools[%d].type", j)
				return false
			}
			f := tool.Get("function")
			name := f.Get("name")
			if name.Type != gjson.String || name.Str == "" {
				e = fieldError("missing_required_parameter", "must be a non-empty string", "tools[%d].function.name", j)
				return false
			}
			if j > 0 {
				out = append(out, ',')
			}
			out = append(append(out, `{"name":`...), name.Raw...)
			if d := f.Get("description"); d.Type == gjson.String {
				out = append(append(out, `,"description":`...), d.Raw...)
			}
			out = append(out, `,"input_schema":`...)
			if p := f.Get("parameters"); p.IsObject() {
				out = append(out, p.Raw...)
			} else {
				out = append(out, `{"type":"object","properties":{}}`...)
			}
			out = append(out, '}')
			j++
			return true
		})
		if e != nil {
			return nil, e
		}
		out = append(out, ']')
	}
	noParallel := c.parallel.Type == gjson.False
	typ, name := "", ""
	switch v := c.toolChoice; {
	case !v.Exists() || v.Type == gjson.Null:
		if noParallel && c.tools.IsArray() {
			typ = "auto"
		}
	case v.Type == gjson.String:
		switch v.Str {
		case "none":
			typ, noParallel = "none", false // Anthropic refuses the flag with none
		case "auto":
			typ = "auto"
		case "required":
			typ = "any"
		default:
			return nil, badRequest("invalid_value", "tool_choice", `tool_choice must be "none", "auto", "required" or a function`)
		}
	case v.IsObject():
		n := v.Get("function.name")
		if v.Get("type").Str != "function" || n.Type != gjson.String || n.Str == "" {
			return nil, badRequest("invalid_value", "tool_choice", `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`)
		}
		typ, name = "tool", n.Raw
	default:
		return nil, badRequest("invalid_type", "tool_choice", "tool_choice must be a string or an object")
	}
	if typ != "" {
		out = append(append(append(out, `,"tool_choice":{"type":"`...), typ...), '"')
		if name != "" {
			out = append(append(out, `,"name":`...), name...)
		}
		if noParallel {
			out = append(out, `,"disable_parallel_tool_use":true`...)
		}
		out = append(out, '}')
	}
	return out, nil
}

// appendMessages writes "system" (every system and developer message, in
// order: Anthropic takes them apart from the turns) and "messages".
// Consecutive tool messages become one user turn of tool_result blocks, as
// Anthropic wants the results of one assistant turn's calls together.
// Field names for errors are formatted only when there is one.
func appendMessages(out []byte, msgs gjson.Result) ([]byte, *Error) {
	var e *Error
	// System first: its blocks precede the turns in the body.
	mark := len(out)
	out = append(out, `,"system":[`...)
	nsys := 0
	i := 0
	msgs.ForEach(func(_, m gjson.Result) bool {
		if role := m.Get("role").Str; role == "system" || role == "developer" {
			out, nsys, e = appendTextBlocks(out, rawMember(m, "content"), nsys, i)
		}
		i++
		return e == nil
	})
	if e != nil {
		return nil, e
	}
	if nsys == 0 {
		out = out[:mark] // no system text at all
	} else {
		out = append(out, ']')
	}
	out = append(out, `,"messages":[`...)
	turns, inTools := 0, false
	i = -1
	msgs.ForEach(func(_, m gjson.Result) bool {
		i++
		if !m.IsObject() {
			e = fieldError("invalid_type", "must be an object", "messages[%d]", i)
			return false
		}
		role := m.Get("role")
		if role.Type != gjson.String {
			e = fieldError("invalid_type", "must be a string", "messages[%d].role", i)
			return false
		}
		if inTools && role.Str != "tool" {
			out, inTools = append(out, "]}"...), false
		}
		switch role.Str {
		case "system", "developer":
			return true
		case "tool":
			id := m.Get("tool_call_id")
			if id.Type != gjson.String || id.Str == "" {
				e = fieldError("missing_required_parameter", "must be a non-empty string", "messages[%d].tool_call_id", i)
				return false
			}
			if !inTools {
				if turns > 0 {
					out = append(out, ',')
				}
				out = append(out, `{"role":"user","content":[`...)
				turns, inTools = turns+1, true
			} else {
				out = append(out, ',')
			}
			out = append(append(out, `{"type":"tool_result","tool_use_id":`...), id.Raw...)
			out = append(out, `,"content":`...)
			if c := rawMember(m, "content"); c.Type == gjson.String {
				out = append(out, c.Raw...)
			} else {
				out = append(out, '[')
				if out, _, e = appendTextBlocks(out, c, 0, i); e != nil {
					return false
				}
				out = append(out, ']')
			}
			out = append(out, '}')
		case "user":
			if turns > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"role":"user","content":`...)
			if out, e = appendUserContent(out, rawMember(m, "content"), i); e != nil {
				return false
			}
			out = append(out, '}')
			turns++
		case "assistant":
			mark := len(out)
			if turns > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"role":"assistant","content":[`...)
			var n int
			if out, n, e = appendAssistantContent(out, m, i); e != nil {
				return false
			}
			if n == 0 { // nothing said: Anthropic refuses empty turns
				out = out[:mark]
				return true
			}
			out = append(out, "]}"...)
			turns++
		default:
			e = fieldError("invalid_value", "role "+strconv.Quote(role.Str)+" is not available with an Anthropic backend", "messages[%d].role", i)
			return false
		}
		return true
	})
	if e != nil {
		return nil, e
	}
	if inTools {
		out = append(out, "]}"...)
	}
	return append(out, ']'), nil
}

// rawMember returns the value of obj's member key (obj a valid object) with
// its Raw and Type but not its Str: gjson's Get unescapes every string it
// lands on, which allocates, and texts are copied raw. Missing: the zero
// Result.
func rawMember(obj gjson.Result, key string) gjson.Result {
	b := unsafe.Slice(unsafe.StringData(obj.Raw), len(obj.Raw))
	v := noSpan
	scanTopLevel(b, func(k, val span) bool {
		if k.ok() && keyName(b, k) == key {
			v = val
			return false
		}
		return true
	})
	if !v.ok() || !obj.IsObject() {
		return gjson.Result{}
	}
	r := gjson.Result{Raw: obj.Raw[v.start:v.end]}
	switch r.Raw[0] {
	case '"':
		r.Type = gjson.String
	case '{', '[':
		r.Type = gjson.JSON
	case 't':
		r.Type = gjson.True
	case 'f':
		r.Type = gjson.False
	case 'n':
		r.Type = gjson.Null
	default:
		r.Type = gjson.Number
	}
	return r
}

// fieldError is a 400 for the request field named by Sprintf(format,
// indexes...): "<field>: <problem>", with the field as param.
func fieldError(code, problem, format string, indexes ...any) *Error {
	param := fmt.Sprintf(format, indexes...)
	return badRequest(code, param, "%s: %s", param, problem)
}

// appendTextBlocks appends the text of message i's content (a string, or
// an array of text parts) as text blocks after n earlier ones, and returns
// the new count. An empty string gives no block: Anthropic refuses empty
// text.
func appendTextBlocks(out []byte, content gjson.Result, n, i int) ([]byte, int, *Error) {
	return textBlocks(out, content, n, i, true)
}

// checkTextBlocks refuses what appendTextBlocks refuses, writing nothing
// (for the translations that write system texts elsewhere).
func checkTextBlocks(content gjson.Result, i int) *Error {
	_, _, e := textBlocks(nil, content, 0, i, false)
	return e
}

// textBlocks is appendTextBlocks, which writes only when write is set.
func textBlocks(out []byte, content gjson.Result, n, i int, write bool) ([]byte, int, *Error) {
	add := func(text gjson.Result) {
		if text.Raw == `""` || !write {
			return
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(append(append(out, `{"type":"text","text":`...), text.Raw...), '}')
		n++
	}
	switch {
	case content.Type == gjson.String:
		add(content)
	case content.IsArray():
		var e *Error
		j := 0
		content.ForEach(func(_, part gjson.Result) bool {
			text := rawMember(part, "text")
			if part.Get("type").Str != "text" || text.Type != gjson.String {
				e = fieldError("invalid_value", "must be a text part", "messages[%d].content[%d]", i, j)
				return false
			}
			add(text)
			j++
			return true
		})
		if e != nil {
			return nil, 0, e
		}
	case !content.Exists() || content.Type == gjson.Null:
	default:
		return nil, 0, fieldError("invalid_type", "must be a string or an array of parts", "messages[%d].content", i)
	}
	return out, n, nil
}

// appendUserContent writes message i's content: a string as is, an array
// of parts as text and image blocks.
func appendUserContent(out []byte, content gjson.Result, i int) ([]byte, *Error) {
	if content.Type == gjson.String {
		return append(out, content.Raw...), nil
	}
	return appendUserParts(out, content, i, anthropicParts)
}

var anthropicParts = userParts{textOpen: `{"type":"text","text":`, image: appendImage, backend: "an Anthropic backend"}

// appendImage writes an image block: a data: URL as base64 data, an http(s)
// URL as a URL source.
func appendImage(out []byte, img gjson.Result, i, j int) ([]byte, *Error) {
	const field = imageURLField
	u, e := imageURL(img, i, j)
	if e != nil {
		return nil, e
	}
	if data, ok := strings.CutPrefix(u, "data:"); ok {
		mt, b64, ok := strings.Cut(data, ";base64,")
		switch mt {
		case "image/jpeg", "image/png", "image/gif", "image/webp":
		default:
			ok = false
		}
		if !ok || b64 == "" {
			return nil, fieldError("invalid_value", "a data URL must be base64 image/jpeg, image/png, image/gif or image/webp", field, i, j)
		}
		out = append(out, `{"type":"image","source":{"type":"base64","media_type":"`...)
		out = append(append(out, mt...), `","data":`...)
		out = gjson.AppendJSONString(out, b64)
		return append(out, "}}"...), nil
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return nil, fieldError("invalid_value", "url must be an http(s) or data URL", field, i, j)
	}
	out = gjson.AppendJSONString(append(out, `{"type":"image","source":{"type":"url","url":`...), u)
	return append(out, "}}"...), nil
}

// appendAssistantContent writes assistant message i's text and tool calls
// as blocks and returns how many it wrote.
func appendAssistantContent(out []byte, m gjson.Result, i int) ([]byte, int, *Error) {
	c := rawMember(m, "content")
	if !c.IsArray() {
		out, n, e := appendTextBlocks(out, c, 0, i)
		if e != nil {
			return nil, 0, e
		}
		return appendToolCalls(out, n, m.Get("tool_calls"), i)
	}
	// Text and refusal parts.
	n := 0
	var e *Error
	j := 0
	c.ForEach(func(_, part gjson.Result) bool {
		text := rawMember(part, "text")
		if part.Get("type").Str == "refusal" {
			text = rawMember(part, "refusal")
		}
		if text.Type != gjson.String {
			e = fieldError("invalid_value", "must be a text or refusal part", "messages[%d].content[%d]", i, j)
			return false
		}
		if text.Raw != `""` {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(append(append(out, `{"type":"text","text":`...), text.Raw...), '}')
			n++
		}
		j++
		return true
	})
	if e != nil {
		return nil, 0, e
	}
	return appendToolCalls(out, n, m.Get("tool_calls"), i)
}

// appendToolCalls writes message i's tool calls as tool_use blocks; the
// arguments, a JSON string in OpenAI's shape, become the input object.
func appendToolCalls(out []byte, n int, calls gjson.Result, i int) ([]byte, int, *Error) {
	if !calls.Exists() || calls.Type == gjson.Null {
		return out, n, nil
	}
	if !calls.IsArray() {
		return nil, 0, fieldError("invalid_type", "must be an array", "messages[%d].tool_calls", i)
	}
	var e *Error
	j := -1
	calls.ForEach(func(_, call gjson.Result) bool {
		j++
		id, name, args := call.Get("id"), call.Get("function.name"), call.Get("function.arguments")
		var input string
		if input, e = toolCallInput(id, name, args, i, j); e != nil {
			return false
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(append(out, `{"type":"tool_use","id":`...), id.Raw...)
		out = append(append(out, `,"name":`...), name.Raw...)
		out = append(append(append(out, `,"input":`...), input...), '}')
		n++
		return true
	})
	if e != nil {
		return nil, 0, e
	}
	return out, n, nil
}
