package transform

import (
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// geminiTranslator sends OpenAI chat completions to Google's
// generateContent API, as the Gemini API serves it (schema gemini: API key
// in x-goog-api-key) or Vertex AI does (schema vertex_ai: OAuth bearer
// token, the model under a project and location), and turns the answers,
// JSON or streamed (alt=sse), back into OpenAI's chat completion shapes.
// The request side is in this file, the JSON response and errors in
// openai_gemini_response.go, the stream in openai_gemini_stream.go.
type geminiTranslator struct {
	backend *Backend
	now     func() time.Time // for "created"; time.Now but in tests

	// From the request.
	model        string // the request's model (named in responses)
	includeUsage bool   // the client asked for a usage chunk

	// From the response.
	resp    rewrittenResponse
	created int64
	stream  geminiStream

	usage    Usage
	hasUsage bool

	// Kept across exchanges (reset).
	req requestBuffers
	ans answerBuffers
}

// reset sets t as a new translator for an exchange with b, keeping only
// its emptied buffers.
func (t *geminiTranslator) reset(b *Backend, now func() time.Time) {
	*t = geminiTranslator{backend: b, now: now, resp: t.resp.recycled(), stream: t.stream.recycled(),
		req: t.req.recycled(), ans: t.ans.recycled()}
}

func (t *geminiTranslator) TranslateRequest(req UpstreamRequest) (TranslatedRequest, error) {
	if EndpointOf(req.Path) != EndpointChatCompletions {
		return TranslatedRequest{}, unknownURL(req.Path, "a Gemini backend serves /v1/chat/completions only")
	}
	r, err := ParseRequest(EndpointChatCompletions, req.Body)
	if err != nil {
		return TranslatedRequest{}, err
	}
	t.model = t.req.setModel(r.Model)
	t.includeUsage = r.Stream && r.IncludeUsage
	body, e := geminiRequestBody(t.req.startBody(len(req.Body)+256), req.Body)
	if e != nil {
		return TranslatedRequest{}, e
	}
	t.req.body = body
	sent := t.model
	if t.backend.Model != "" {
		sent = t.backend.Model
	}
	h := t.req.startEdits()
	h = append(h,
		HeaderEdit{Name: ":path", Value: t.req.setPath(t.backend.appendGeminiPath(t.req.path[:0], sent, r.Stream))},
		t.req.contentLength(len(body)),
		HeaderEdit{Name: "content-type", Value: "application/json"},
		// The response is read to be translated: it must come plain.
		HeaderEdit{Name: "accept-encoding", Remove: true},
	)
	if t.backend.Schema == SchemaVertexAI {
		h = credentialEdits(h, HeaderEdit{Name: "authorization", Value: t.backend.bearer})
	} else {
		h = credentialEdits(h, HeaderEdit{Name: "x-goog-api-key", Value: t.backend.apiKey})
	}
	return TranslatedRequest{Headers: h, Body: body}, nil
}

// appendGeminiPath appends to p the generateContent path for model: the
// Gemini API's {prefix}/models/{model}:method, or Vertex AI's
// {prefix}/projects/{p}/locations/{l}/publishers/google/models/{model}:method.
// The model is one percent-encoded segment, so it cannot add segments, a
// query or another method.
func (b *Backend) appendGeminiPath(p []byte, model string, stream bool) []byte {
	p = append(p, b.PathPrefix...)
	if b.Schema == SchemaVertexAI {
		p = append(p, "/projects/"...)
		p = appendPathSegment(p, b.Project)
		p = append(p, "/locations/"...)
		p = appendPathSegment(p, b.Location)
		p = append(p, "/publishers/google"...)
	}
	p = append(p, "/models/"...)
	p = appendPathSegment(p, strings.TrimPrefix(model, "models/"))
	if stream {
		return append(p, ":streamGenerateContent?alt=sse"...)
	}
	return append(p, ":generateContent"...)
}

// geminiRequestBody appends to out the generateContent body for an OpenAI
// chat request (a valid JSON object: ParseRequest checked it).
func geminiRequestBody(out, body []byte) ([]byte, *Error) {
	c := readChatRequest(body)
	if c.n.Exists() && c.n.Type != gjson.Null && (c.n.Type != gjson.Number || c.n.Raw != "1") {
		return nil, badRequest("unsupported_value", "n", "n: a Gemini backend returns one choice here; n must be 1")
	}
	if c.logprobs.Type == gjson.True {
		return nil, badRequest("unsupported_value", "logprobs", "logprobs are not available from a Gemini backend")
	}
	out = append(out, '{')
	var e *Error
	if out, e = appendGeminiContents(out, c.messages); e != nil {
		return nil, e
	}
	if out, e = c.appendGeminiTools(out); e != nil {
		return nil, e
	}
	if out, e = c.appendGenerationConfig(out); e != nil {
		return nil, e
	}
	return append(out, '}'), nil
}

// appendGenerationConfig writes generationConfig: sampling, length, stop
// sequences and the response format.
func (c *chatRequest) appendGenerationConfig(out []byte) ([]byte, *Error) {
	mark := len(out)
	out = append(out, `,"generationConfig":{`...)
	start := len(out)
	field := func(name string) {
		if len(out) > start {
			out = append(out, ',')
		}
		out = append(append(append(out, '"'), name...), `":`...)
	}
	if raw, ok, e := c.maxOutputTokens(); e != nil {
		return nil, e
	} else if ok {
		field("maxOutputTokens")
		out = append(out, raw...)
	}
	for _, f := range [...]struct {
		openai, gemini string
		v              gjson.Result
	}{
		{"temperature", "temperature", c.temperature},
		{"top_p", "topP", c.topP},
		{"top_k", "topK", c.topK},
		{"presence_penalty", "presencePenalty", c.presence},
		{"frequency_penalty", "frequencyPenalty", c.frequency},
		{"seed", "seed", c.seed},
	} {
		if !f.v.Exists() || f.v.Type == gjson.Null {
			continue
		}
		if f.v.Type != gjson.Number {
			return nil, badRequest("invalid_type", f.openai, "%s must be a number", f.openai)
		}
		field(f.gemini)
		out = append(out, f.v.Raw...)
	}
	stop, e := c.appendStop(nil)
	if e != nil {
		return nil, e
	}
	if len(stop) > 0 { // `,"stop_sequences":[...]`
		field("stopSequences")
		out = append(out, stop[len(`,"stop_sequences":`):]...)
	}
	if rf := c.responseFormat; rf.Exists() && rf.Type != gjson.Null {
		switch typ := rf.Get("type"); {
		case typ.Type == gjson.String && typ.Str == "text":
		case typ.Type == gjson.String && typ.Str == "json_object":
			field("responseMimeType")
			out = append(out, `"application/json"`...)
		case typ.Type == gjson.String && typ.Str == "json_schema":
			schema := rf.Get("json_schema.schema")
			if !schema.IsObject() {
				return nil, badRequest("invalid_value", "response_format.json_schema.schema", "response_format.json_schema.schema must be an object")
			}
			field("responseMimeType")
			out = append(out, `"application/json"`...)
			field("responseJsonSchema")
			out = append(out, schema.Raw...)
		default:
			return nil, badRequest("invalid_value", "response_format", "response_format: type must be text, json_object or json_schema")
		}
	}
	if len(out) == start {
		return out[:mark], nil
	}
	return append(out, '}'), nil
}

// appendGeminiTools writes tools (function declarations) and toolConfig.
func (c *chatRequest) appendGeminiTools(out []byte) ([]byte, *Error) {
	if v := c.tools; v.Exists() && v.Type != gjson.Null && !(v.IsArray() && emptyContainer(v.Raw)) {
		if !v.IsArray() {
			return nil, badRequest("invalid_type", "tools", "tools must be an array")
		}
		out = append(out, `,"tools":[{"functionDeclarations":[`...)
		var e *Error
		j := 0
		v.ForEach(func(_, tool gjson.Result) bool {
			if typ := tool.Get("type"); typ.Type != gjson.String || typ.Str != "function" {
				e = fieldError("unsupported_value", "only function tools are available from a Gemini backend", "tools[%d].type", j)
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
			// parametersJsonSchema takes JSON Schema as OpenAI's clients
			// write it; "parameters" would take only Google's OpenAPI subset.
			if p := f.Get("parameters"); p.IsObject() {
				out = append(append(out, `,"parametersJsonSchema":`...), p.Raw...)
			}
			out = append(out, '}')
			j++
			return true
		})
		if e != nil {
			return nil, e
		}
		out = append(out, "]}]"...)
	}
	mode, name := "", ""
	switch v := c.toolChoice; {
	case !v.Exists() || v.Type == gjson.Null:
	case v.Type == gjson.String:
		switch v.Str {
		case "none":
			mode = "NONE"
		case "auto":
			mode = "AUTO"
		case "required":
			mode = "ANY"
		default:
			return nil, badRequest("invalid_value", "tool_choice", `tool_choice must be "none", "auto", "required" or a function`)
		}
	case v.IsObject():
		n := v.Get("function.name")
		if v.Get("type").Str != "function" || n.Type != gjson.String || n.Str == "" {
			return nil, badRequest("invalid_value", "tool_choice", `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`)
		}
		mode, name = "ANY", n.Raw
	default:
		return nil, badRequest("invalid_type", "tool_choice", "tool_choice must be a string or an object")
	}
	if mode != "" {
		out = append(append(append(out, `,"toolConfig":{"functionCallingConfig":{"mode":"`...), mode...), '"')
		if name != "" {
			out = append(append(append(out, `,"allowedFunctionNames":[`...), name...), ']')
		}
		out = append(out, "}}"...)
	}
	return out, nil
}

// toolCallNames remembers the function name of each tool call id the
// conversation's assistant turns made: Gemini's functionResponse names the
// function, where OpenAI's tool message names the call.
type toolCallNames struct{ ids, names []gjson.Result }

func (n *toolCallNames) add(id, name gjson.Result) {
	n.ids, n.names = append(n.ids, id), append(n.names, name)
}

// lookup returns the name of the latest call with id (ids may repeat
// across turns: the latest is the one a tool message answers).
func (n *toolCallNames) lookup(id string) (gjson.Result, bool) {
	for i := len(n.ids) - 1; i >= 0; i-- {
		if n.ids[i].Str == id {
			return n.names[i], true
		}
	}
	return gjson.Result{}, false
}

// appendGeminiContents writes "contents" and "systemInstruction" (every
// system and developer message, in order). Consecutive tool messages
// become one user turn of functionResponse parts.
func appendGeminiContents(out []byte, msgs gjson.Result) ([]byte, *Error) {
	if !msgs.IsArray() {
		return nil, badRequest("invalid_type", "messages", "messages must be an array")
	}
	var e *Error
	var calls toolCallNames
	out = append(out, `"contents":[`...)
	turns, inTools := 0, false
	i := -1
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
			e = checkTextBlocks(rawMember(m, "content"), i) // checked here, written below
			return e == nil
		case "tool":
			id := m.Get("tool_call_id")
			if id.Type != gjson.String || id.Str == "" {
				e = fieldError("missing_required_parameter", "must be a non-empty string", "messages[%d].tool_call_id", i)
				return false
			}
			name, ok := calls.lookup(id.Str)
			if !ok {
				e = fieldError("invalid_value", "names no tool call of an earlier assistant message", "messages[%d].tool_call_id", i)
				return false
			}
			if !inTools {
				if turns > 0 {
					out = append(out, ',')
				}
				out = append(out, `{"role":"user","parts":[`...)
				turns, inTools = turns+1, true
			} else {
				out = append(out, ',')
			}
			out = append(append(out, `{"functionResponse":{"name":`...), name.Raw...)
			out = append(out, `,"response":{"content":`...)
			if out, e = appendJoinedText(out, rawMember(m, "content"), i); e != nil {
				return false
			}
			out = append(out, "}}}"...)
		case "user":
			if turns > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"role":"user","parts":`...)
			if out, e = appendGeminiUserParts(out, rawMember(m, "content"), i); e != nil {
				return false
			}
			out = append(out, '}')
			turns++
		case "assistant":
			mark := len(out)
			if turns > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"role":"model","parts":[`...)
			var n int
			if out, n, e = appendGeminiAssistantParts(out, m, i, &calls); e != nil {
				return false
			}
			if n == 0 { // nothing said: an empty turn is refused
				out = out[:mark]
				return true
			}
			out = append(out, "]}"...)
			turns++
		default:
			e = fieldError("invalid_value", "role "+strconv.Quote(role.Str)+" is not available with a Gemini backend", "messages[%d].role", i)
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
	out = append(out, ']')
	// System instruction: the text parts of every system message, in order.
	mark := len(out)
	out = append(out, `,"systemInstruction":{"parts":[`...)
	n := 0
	msgs.ForEach(func(_, m gjson.Result) bool {
		if role := m.Get("role").Str; role == "system" || role == "developer" {
			out = appendTextParts(out, rawMember(m, "content"), &n)
		}
		return true
	})
	if n == 0 {
		return out[:mark], nil
	}
	return append(out, "]}"...), nil
}

// appendTextParts appends content's texts (a string or text parts, checked
// already) as {"text":...} parts, skipping empty ones.
func appendTextParts(out []byte, content gjson.Result, n *int) []byte {
	add := func(text gjson.Result) {
		if text.Type != gjson.String || text.Raw == `""` {
			return
		}
		if *n > 0 {
			out = append(out, ',')
		}
		out = append(append(append(out, `{"text":`...), text.Raw...), '}')
		*n++
	}
	if content.IsArray() {
		content.ForEach(func(_, part gjson.Result) bool {
			add(rawMember(part, "text"))
			return true
		})
	} else {
		add(content)
	}
	return out
}

// appendJoinedText writes a tool message's content as one JSON string: a
// string as is, text parts joined.
func appendJoinedText(out []byte, content gjson.Result, i int) ([]byte, *Error) {
	switch {
	case content.Type == gjson.String:
		return append(out, content.Raw...), nil
	case !content.Exists() || content.Type == gjson.Null:
		return append(out, `""`...), nil
	case content.IsArray():
		var text strings.Builder
		var e *Error
		j := 0
		content.ForEach(func(_, part gjson.Result) bool {
			t := part.Get("text")
			if part.Get("type").Str != "text" || t.Type != gjson.String {
				e = fieldError("invalid_value", "must be a text part", "messages[%d].content[%d]", i, j)
				return false
			}
			text.WriteString(t.Str)
			j++
			return true
		})
		if e != nil {
			return nil, e
		}
		return gjson.AppendJSONString(out, text.String()), nil
	}
	return nil, fieldError("invalid_type", "must be a string or an array of parts", "messages[%d].content", i)
}

// appendGeminiUserParts writes user message i's content as parts: text,
// and images inline (data URLs) or by URI.
func appendGeminiUserParts(out []byte, content gjson.Result, i int) ([]byte, *Error) {
	if content.Type == gjson.String {
		return append(append(append(out, `[{"text":`...), content.Raw...), "}]"...), nil
	}
	return appendUserParts(out, content, i, geminiParts)
}

var geminiParts = userParts{textOpen: `{"text":`, image: appendGeminiImage, backend: "a Gemini backend"}

// imageTypes maps an image URL's file extension to its MIME type: a
// fileData part must say it.
var imageTypes = map[string]string{
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
	".gif": "image/gif", ".webp": "image/webp", ".heic": "image/heic", ".heif": "image/heif",
}

// appendGeminiImage writes an image part: a base64 data URL as inlineData,
// an https or gs URL whose name says its type as fileData.
func appendGeminiImage(out []byte, img gjson.Result, i, j int) ([]byte, *Error) {
	const field = imageURLField
	u, e := imageURL(img, i, j)
	if e != nil {
		return nil, e
	}
	if data, ok := strings.CutPrefix(u, "data:"); ok {
		mt, b64, ok := strings.Cut(data, ";base64,")
		if !ok || b64 == "" || !strings.HasPrefix(mt, "image/") || !headerSafe(mt) || strings.ContainsAny(mt, `"\ `) {
			return nil, fieldError("invalid_value", "a data URL must be a base64 image", field, i, j)
		}
		out = append(out, `{"inlineData":{"mimeType":"`...)
		out = append(append(out, mt...), `","data":`...)
		out = gjson.AppendJSONString(out, b64)
		return append(out, "}}"...), nil
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "gs://") {
		return nil, fieldError("invalid_value", "url must be a base64 data URL, or an https or gs URL", field, i, j)
	}
	name := u
	if k := strings.IndexAny(name, "?#"); k >= 0 {
		name = name[:k]
	}
	ext := ""
	if k := strings.LastIndexByte(name, '.'); k >= 0 && !strings.Contains(name[k:], "/") {
		ext = strings.ToLower(name[k:])
	}
	mt, ok := imageTypes[ext]
	if !ok {
		return nil, fieldError("invalid_value", "a URL must name an image file (.png, .jpg, .jpeg, .gif, .webp, .heic, .heif): a Gemini backend needs its type", field, i, j)
	}
	out = append(out, `{"fileData":{"mimeType":"`...)
	out = append(append(out, mt...), `","fileUri":`...)
	out = gjson.AppendJSONString(out, u)
	return append(out, "}}"...), nil
}

// appendGeminiAssistantParts writes assistant message i's text and tool
// calls as parts, notes the calls' names, and returns how many parts it
// wrote.
func appendGeminiAssistantParts(out []byte, m gjson.Result, i int, calls *toolCallNames) ([]byte, int, *Error) {
	n := 0
	c := rawMember(m, "content")
	switch {
	case c.IsArray():
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
			out = appendTextParts(out, text, &n)
			j++
			return true
		})
		if e != nil {
			return nil, 0, e
		}
	case c.Type == gjson.String:
		out = appendTextParts(out, c, &n)
	case !c.Exists() || c.Type == gjson.Null:
	default:
		return nil, 0, fieldError("invalid_type", "must be a string or an array of parts", "messages[%d].content", i)
	}
	tc := m.Get("tool_calls")
	if !tc.Exists() || tc.Type == gjson.Null {
		return out, n, nil
	}
	if !tc.IsArray() {
		return nil, 0, fieldError("invalid_type", "must be an array", "messages[%d].tool_calls", i)
	}
	var e *Error
	j := -1
	tc.ForEach(func(_, call gjson.Result) bool {
		j++
		id, name, args := call.Get("id"), call.Get("function.name"), call.Get("function.arguments")
		var input string
		if input, e = toolCallInput(id, name, args, i, j); e != nil {
			return false
		}
		calls.add(id, name)
		if n > 0 {
			out = append(out, ',')
		}
		out = append(append(out, `{"functionCall":{"name":`...), name.Raw...)
		out = append(append(append(out, `,"args":`...), input...), "}}"...)
		n++
		return true
	})
	if e != nil {
		return nil, 0, e
	}
	return out, n, nil
}
