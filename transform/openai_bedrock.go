package transform

import (
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// bedrockTranslator sends OpenAI chat completions to AWS Bedrock's
// Converse API (/model/{id}/converse, and converse-stream for a streamed
// request, whose answer is AWS's binary event stream) and turns the
// answers back into OpenAI's chat completion shapes. The request is signed
// (SigV4) by the backend's RequestSigner after translation, on every
// attempt. The request side is in this file, the JSON response and errors
// in openai_bedrock_response.go, the event stream in openai_bedrock_stream.go.
type bedrockTranslator struct {
	backend *Backend
	now     func() time.Time // for "created" and the signature's time

	// From the request.
	model        string
	includeUsage bool

	// From the response.
	resp    rewrittenResponse
	created int64
	stream  bedrockStream

	usage      Usage
	cacheWrite uint64
	hasUsage   bool

	// Kept across exchanges (reset).
	req requestBuffers
	ans answerBuffers
}

// reset sets t as a new translator for an exchange with b, keeping only
// its emptied buffers.
func (t *bedrockTranslator) reset(b *Backend, now func() time.Time) {
	*t = bedrockTranslator{backend: b, now: now, resp: t.resp.recycled(), stream: t.stream.recycled(),
		req: t.req.recycled(), ans: t.ans.recycled()}
}

var _ CacheCreationReporter = (*bedrockTranslator)(nil)

// RequestSigner signs an attempt's final request: the host, path, content
// type and body it will carry. It returns the headers that carry the
// signature (AWS SigV4: authorization, x-amz-date, x-amz-security-token).
// The module provides it (it needs net/http, which this package keeps out).
// host, path and body are the translator's memory: Sign must not keep
// them past its return.
type RequestSigner interface {
	Sign(host, path, contentType string, body []byte, at time.Time) ([]HeaderEdit, error)
}

// WithSigner returns a copy of b that signs its requests with s.
func (b *Backend) WithSigner(s RequestSigner) *Backend {
	c := *b
	c.signer = s
	return &c
}

// appendBedrockHost appends the Bedrock runtime endpoint of the backend's
// region.
func (b *Backend) appendBedrockHost(dst []byte) []byte {
	return append(append(append(dst, "bedrock-runtime."...), b.Region...), ".amazonaws.com"...)
}

// CacheCreationInputTokens is the number of input tokens Bedrock wrote to
// its prompt cache (cacheWriteInputTokens); they count in InputTokens too.
func (t *bedrockTranslator) CacheCreationInputTokens() uint64 { return t.cacheWrite }

func (t *bedrockTranslator) TranslateRequest(req UpstreamRequest) (TranslatedRequest, error) {
	if EndpointOf(req.Path) != EndpointChatCompletions {
		return TranslatedRequest{}, unknownURL(req.Path, "a Bedrock backend serves /v1/chat/completions only")
	}
	r, err := ParseRequest(EndpointChatCompletions, req.Body)
	if err != nil {
		return TranslatedRequest{}, err
	}
	t.model = t.req.setModel(r.Model)
	t.includeUsage = r.Stream && r.IncludeUsage
	body, e := bedrockRequestBody(t.req.startBody(len(req.Body)+256), req.Body)
	if e != nil {
		return TranslatedRequest{}, e
	}
	t.req.body = body
	sent := t.model
	if t.backend.Model != "" {
		sent = t.backend.Model
	}
	p := append(t.req.path[:0], "/model/"...)
	p = appendPathSegment(p, sent)
	if r.Stream {
		p = append(p, "/converse-stream"...)
	} else {
		p = append(p, "/converse"...)
	}
	path := t.req.setPath(p)
	t.req.host = t.backend.appendBedrockHost(t.req.host[:0])
	host := unsafeString(t.req.host)
	h := t.req.startEdits()
	h = append(h,
		HeaderEdit{Name: ":path", Value: path},
		HeaderEdit{Name: ":authority", Value: host},
		t.req.contentLength(len(body)),
		HeaderEdit{Name: "content-type", Value: "application/json"},
		// The response is read to be translated: it must come plain.
		HeaderEdit{Name: "accept-encoding", Remove: true},
	)
	if t.backend.signer == nil {
		return TranslatedRequest{}, &Error{Status: 500, Type: "server_error", Message: "the Bedrock backend has no AWS credentials"}
	}
	sig, err := t.backend.signer.Sign(host, path, "application/json", body, t.now())
	if err != nil {
		// Never the credentials: the signer's errors name what failed.
		return TranslatedRequest{}, &Error{Status: 500, Type: "server_error", Message: "signing the Bedrock request failed: " + err.Error()}
	}
	return TranslatedRequest{Headers: credentialEdits(h, sig...), Body: body}, nil
}

// bedrockRequestBody appends to out the Converse body for an OpenAI chat
// request.
func bedrockRequestBody(out, body []byte) ([]byte, *Error) {
	c := readChatRequest(body)
	if c.n.Exists() && c.n.Type != gjson.Null && (c.n.Type != gjson.Number || c.n.Raw != "1") {
		return nil, badRequest("unsupported_value", "n", "n: a Bedrock backend returns one choice; n must be 1")
	}
	if c.logprobs.Type == gjson.True {
		return nil, badRequest("unsupported_value", "logprobs", "logprobs are not available from a Bedrock backend")
	}
	if rf := c.responseFormat; rf.Exists() && rf.Type != gjson.Null {
		if typ := rf.Get("type"); typ.Type != gjson.String || typ.Str != "text" {
			return nil, badRequest("unsupported_value", "response_format", "response_format: only type text is available from a Bedrock backend")
		}
	}
	out = append(out, '{')
	var e *Error
	if out, e = appendBedrockMessages(out, c.messages); e != nil {
		return nil, e
	}
	if out, e = c.appendInferenceConfig(out); e != nil {
		return nil, e
	}
	if out, e = c.appendToolConfig(out); e != nil {
		return nil, e
	}
	return append(out, '}'), nil
}

// appendInferenceConfig writes inferenceConfig: maxTokens, temperature,
// topP, stopSequences.
func (c *chatRequest) appendInferenceConfig(out []byte) ([]byte, *Error) {
	mark := len(out)
	out = append(out, `,"inferenceConfig":{`...)
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
		field("maxTokens")
		out = append(out, raw...)
	}
	for _, f := range [...]struct {
		openai, bedrock string
		v               gjson.Result
	}{{"temperature", "temperature", c.temperature}, {"top_p", "topP", c.topP}} {
		if !f.v.Exists() || f.v.Type == gjson.Null {
			continue
		}
		if f.v.Type != gjson.Number {
			return nil, badRequest("invalid_type", f.openai, "%s must be a number", f.openai)
		}
		field(f.bedrock)
		out = append(out, f.v.Raw...)
	}
	stop, e := c.appendStop(nil)
	if e != nil {
		return nil, e
	}
	if len(stop) > 0 {
		field("stopSequences")
		out = append(out, stop[len(`,"stop_sequences":`):]...)
	}
	if len(out) == start {
		return out[:mark], nil
	}
	return append(out, '}'), nil
}

// appendToolConfig writes toolConfig: the function tools as toolSpecs and
// tool_choice. Converse has no "none": the tools are sent without a choice.
func (c *chatRequest) appendToolConfig(out []byte) ([]byte, *Error) {
	v := c.tools
	if !v.Exists() || v.Type == gjson.Null || v.IsArray() && emptyContainer(v.Raw) {
		return out, nil
	}
	if !v.IsArray() {
		return nil, badRequest("invalid_type", "tools", "tools must be an array")
	}
	out = append(out, `,"toolConfig":{"tools":[`...)
	var e *Error
	j := 0
	v.ForEach(func(_, tool gjson.Result) bool {
		if typ := tool.Get("type"); typ.Type != gjson.String || typ.Str != "function" {
			e = fieldError("unsupported_value", "only function tools are available from a Bedrock backend", "tools[%d].type", j)
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
		out = append(append(out, `{"toolSpec":{"name":`...), name.Raw...)
		if d := f.Get("description"); d.Type == gjson.String && d.Str != "" {
			out = append(append(out, `,"description":`...), d.Raw...)
		}
		out = append(out, `,"inputSchema":{"json":`...)
		if p := f.Get("parameters"); p.IsObject() {
			out = append(out, p.Raw...)
		} else {
			out = append(out, `{"type":"object","properties":{}}`...)
		}
		out = append(out, "}}}"...)
		j++
		return true
	})
	if e != nil {
		return nil, e
	}
	out = append(out, ']')
	switch tc := c.toolChoice; {
	case !tc.Exists() || tc.Type == gjson.Null:
	case tc.Type == gjson.String:
		switch tc.Str {
		case "none":
		case "auto":
			out = append(out, `,"toolChoice":{"auto":{}}`...)
		case "required":
			out = append(out, `,"toolChoice":{"any":{}}`...)
		default:
			return nil, badRequest("invalid_value", "tool_choice", `tool_choice must be "none", "auto", "required" or a function`)
		}
	case tc.IsObject():
		n := tc.Get("function.name")
		if tc.Get("type").Str != "function" || n.Type != gjson.String || n.Str == "" {
			return nil, badRequest("invalid_value", "tool_choice", `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}`)
		}
		out = append(append(append(out, `,"toolChoice":{"tool":{"name":`...), n.Raw...), "}}"...)
	default:
		return nil, badRequest("invalid_type", "tool_choice", "tool_choice must be a string or an object")
	}
	return append(out, '}'), nil
}

// appendBedrockMessages writes "messages" and "system" (every system and
// developer message's text, in order). Consecutive tool messages become
// one user turn of toolResult blocks.
func appendBedrockMessages(out []byte, msgs gjson.Result) ([]byte, *Error) {
	if !msgs.IsArray() {
		return nil, badRequest("invalid_type", "messages", "messages must be an array")
	}
	var e *Error
	out = append(out, `"messages":[`...)
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
			if !inTools {
				if turns > 0 {
					out = append(out, ',')
				}
				out = append(out, `{"role":"user","content":[`...)
				turns, inTools = turns+1, true
			} else {
				out = append(out, ',')
			}
			out = append(append(out, `{"toolResult":{"toolUseId":`...), id.Raw...)
			out = append(out, `,"content":[{"text":`...)
			if out, e = appendJoinedText(out, rawMember(m, "content"), i); e != nil {
				return false
			}
			out = append(out, "}]}}"...)
		case "user":
			if turns > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"role":"user","content":`...)
			if out, e = appendBedrockUserContent(out, rawMember(m, "content"), i); e != nil {
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
			if out, n, e = appendBedrockAssistantContent(out, m, i); e != nil {
				return false
			}
			if n == 0 {
				out = out[:mark]
				return true
			}
			out = append(out, "]}"...)
			turns++
		default:
			e = fieldError("invalid_value", "role "+strconv.Quote(role.Str)+" is not available with a Bedrock backend", "messages[%d].role", i)
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
	mark := len(out)
	out = append(out, `,"system":[`...)
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
	return append(out, ']'), nil
}

// appendBedrockUserContent writes user message i's content blocks: text,
// and images as bytes (Converse takes no image URLs).
func appendBedrockUserContent(out []byte, content gjson.Result, i int) ([]byte, *Error) {
	if content.Type == gjson.String {
		return append(append(append(out, `[{"text":`...), content.Raw...), "}]"...), nil
	}
	return appendUserParts(out, content, i, bedrockParts)
}

var bedrockParts = userParts{textOpen: `{"text":`, image: appendBedrockImage, backend: "a Bedrock backend"}

// appendBedrockImage writes an image block from a base64 data URL.
func appendBedrockImage(out []byte, img gjson.Result, i, j int) ([]byte, *Error) {
	const field = imageURLField
	u, e := imageURL(img, i, j)
	if e != nil {
		return nil, e
	}
	data, ok := strings.CutPrefix(u, "data:")
	mt, b64, ok2 := strings.Cut(data, ";base64,")
	format := ""
	switch mt {
	case "image/jpeg":
		format = "jpeg"
	case "image/png":
		format = "png"
	case "image/gif":
		format = "gif"
	case "image/webp":
		format = "webp"
	}
	if !ok || !ok2 || format == "" || b64 == "" {
		return nil, fieldError("invalid_value", "a Bedrock backend takes images as base64 data URLs of image/jpeg, image/png, image/gif or image/webp", field, i, j)
	}
	out = append(append(out, `{"image":{"format":"`...), format...)
	out = append(out, `","source":{"bytes":`...)
	out = gjson.AppendJSONString(out, b64)
	return append(out, "}}}"...), nil
}

// appendBedrockAssistantContent writes assistant message i's text and
// tool calls as blocks and returns how many it wrote.
func appendBedrockAssistantContent(out []byte, m gjson.Result, i int) ([]byte, int, *Error) {
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
		if n > 0 {
			out = append(out, ',')
		}
		out = append(append(out, `{"toolUse":{"toolUseId":`...), id.Raw...)
		out = append(append(out, `,"name":`...), name.Raw...)
		out = append(append(append(out, `,"input":`...), input...), "}}"...)
		n++
		return true
	})
	if e != nil {
		return nil, 0, e
	}
	return out, n, nil
}
