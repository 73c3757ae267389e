package transform

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// maxAnthropicJSON bounds a JSON (not streamed) response held to be
// translated whole.
const maxAnthropicJSON = 32 << 20

func (t *anthropicTranslator) TranslateResponseHeaders(resp UpstreamResponse) (TranslatedResponseHeaders, error) {
	t.created = t.now().Unix()
	out, isStream, err := t.resp.begin(resp, "the Anthropic backend", "text/event-stream", anthropicStatus(resp.Status))
	if isStream {
		t.stream.init(t)
	}
	return out, err
}

func (t *anthropicTranslator) TranslateResponseBody(dst, chunk []byte, endOfStream bool) ([]byte, bool) {
	return t.resp.translate(dst, chunk, endOfStream, maxAnthropicJSON, &t.stream, t), true
}

// translateWhole implements wholeTranslation.
func (t *anthropicTranslator) translateWhole(dst []byte) []byte { return t.translateMessage(dst) }

func (t *anthropicTranslator) Usage() (Usage, bool) { return t.usage, t.hasUsage }

// translateMessage writes the OpenAI chat.completion for a whole Anthropic
// message, or an OpenAI error body if it is not one.
func (t *anthropicTranslator) translateMessage(dst []byte) []byte {
	if t.resp.tooBig {
		return t.resp.failWhole(dst, upstreamError(502, "the Anthropic response is larger than "+strconv.Itoa(maxAnthropicJSON)+" bytes"))
	}
	// A view, not a copy: the body is not written until the translation
	// is done, and nothing read from it is kept.
	msg := gjson.Parse(unsafeString(t.resp.body))
	if !gjson.ValidBytes(t.resp.body) || !msg.IsObject() || msg.Get("type").Str != "message" {
		e := upstreamError(502, "the Anthropic backend sent a response that is not a message")
		if msg.Get("type").Str == "error" { // an error under a 200
			e = anthropicError(500, msg.Get("error"))
		}
		return t.resp.failWhole(dst, e)
	}
	t.noteUsage(msg.Get("usage"))
	dst = append(dst, `{"id":`...)
	dst = appendStringOr(dst, msg.Get("id"), "msg")
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, t.created, 10)
	dst = append(dst, `,"model":`...)
	dst = t.appendModel(dst, msg.Get("model"))
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	text, reasoning := t.ans.text[:0], t.ans.reasoning[:0]
	hasText, hasReasoning := false, false
	content := msg.Get("content")
	content.ForEach(func(_, b gjson.Result) bool {
		switch b.Get("type").Str {
		case "text": // read raw: Get would copy an escaped text
			text, hasText = appendStr(text, rawMember(b, "text")), true
		case "thinking":
			reasoning, hasReasoning = appendStr(reasoning, rawMember(b, "thinking")), true
		}
		return true
	})
	dst = appendJoined(dst, text, hasText, reasoning, hasReasoning)
	t.ans.text, t.ans.reasoning = kept(text), kept(reasoning)
	calls := 0
	content.ForEach(func(_, b gjson.Result) bool {
		if b.Get("type").Str != "tool_use" {
			return true
		}
		if calls == 0 {
			dst = append(dst, `,"tool_calls":[`...)
		} else {
			dst = append(dst, ',')
		}
		calls++
		dst = append(dst, `{"id":`...)
		dst = appendStringOr(dst, b.Get("id"), "")
		dst = append(dst, `,"type":"function","function":{"name":`...)
		dst = appendStringOr(dst, b.Get("name"), "")
		dst = append(dst, `,"arguments":`...)
		input := b.Get("input")
		if !input.IsObject() {
			dst = append(dst, `"{}"`...)
		} else {
			dst = gjson.AppendJSONString(dst, input.Raw)
		}
		dst = append(dst, "}}"...)
		return true
	})
	if calls > 0 {
		dst = append(dst, ']')
	}
	dst = append(dst, `},"logprobs":null,"finish_reason":`...)
	dst = appendFinishReason(dst, msg.Get("stop_reason"))
	dst = append(dst, "}]"...)
	if t.hasUsage {
		dst = append(dst, `,"usage":`...)
		dst = t.appendUsage(dst)
	}
	return append(dst, '}')
}

// appendModel names the request's model when the backend overrode it,
// else the model Anthropic reports.
func (t *anthropicTranslator) appendModel(dst []byte, reported gjson.Result) []byte {
	if t.override || reported.Type != gjson.String {
		return gjson.AppendJSONString(dst, t.model)
	}
	return append(dst, reported.Raw...)
}

// noteUsage reads an Anthropic usage object. Later values replace earlier
// ones field by field (message_delta's counts are cumulative).
func (t *anthropicTranslator) noteUsage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	in, read, write, out := t.raw[0], t.raw[1], t.raw[2], t.raw[3]
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "input_tokens":
			in = count(v)
		case "cache_read_input_tokens":
			read = count(v)
		case "cache_creation_input_tokens":
			write = count(v)
		case "output_tokens":
			out = count(v)
		}
		return true
	})
	// OpenAI's prompt_tokens count cached tokens; Anthropic's input_tokens
	// count neither cache reads nor cache writes. Saturate rather than wrap
	// on hostile numbers.
	total := addTokens(addTokens(in, read), write)
	t.usage = Usage{
		InputTokens:       total,
		CachedInputTokens: read,
		OutputTokens:      out,
		TotalTokens:       addTokens(total, out),
	}
	t.raw = [4]uint64{in, read, write, out}
	t.cacheCreation = write
	t.hasUsage = true
}

// addTokens adds token counts, saturating (budget.go has the same; kept
// apart so that the translators stand on their own).
func addTokens(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// appendUsage writes the usage in OpenAI's shape, with Anthropic's cache
// counts also under their own names when there are any.
func (t *anthropicTranslator) appendUsage(dst []byte) []byte {
	u := t.usage
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendUint(dst, u.InputTokens, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendUint(dst, u.OutputTokens, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendUint(dst, u.TotalTokens, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendUint(dst, u.CachedInputTokens, 10)
	dst = append(dst, '}')
	if u.CachedInputTokens > 0 || t.cacheCreation > 0 {
		dst = append(dst, `,"cache_read_input_tokens":`...)
		dst = strconv.AppendUint(dst, u.CachedInputTokens, 10)
		dst = append(dst, `,"cache_creation_input_tokens":`...)
		dst = strconv.AppendUint(dst, t.cacheCreation, 10)
	}
	return append(dst, '}')
}

// finishReasons maps Anthropic's stop_reason to OpenAI's finish_reason.
var finishReasons = map[string]string{
	"end_turn":                      "stop",
	"stop_sequence":                 "stop",
	"pause_turn":                    "stop",
	"max_tokens":                    "length",
	"model_context_window_exceeded": "length",
	"tool_use":                      "tool_calls",
	"refusal":                       "content_filter",
}

func appendFinishReason(dst []byte, stop gjson.Result) []byte {
	if stop.Type != gjson.String {
		return append(dst, "null"...)
	}
	fr, ok := finishReasons[stop.Str]
	if !ok {
		fr = "stop" // a reason newer than this table: the turn did end
	}
	return append(append(append(dst, '"'), fr...), '"')
}

// appendStringOr appends v's raw JSON string, or def when v is no string.
func appendStringOr(dst []byte, v gjson.Result, def string) []byte {
	if v.Type == gjson.String {
		return append(dst, v.Raw...)
	}
	return gjson.AppendJSONString(dst, def)
}

// anthropicStatus maps a provider status to the one an OpenAI client would
// see for the same failure: 529 (overloaded) is OpenAI's 503, 402 (billing)
// its 429 insufficient_quota.
func anthropicStatus(status int) int {
	switch status {
	case 529:
		return 503
	case 402:
		return 429
	}
	return status
}

// anthropicErrors maps Anthropic's error types to OpenAI's type and code.
var anthropicErrors = map[string]struct{ typ, code string }{
	"invalid_request_error": {invalidRequest, ""},
	"authentication_error":  {invalidRequest, "invalid_api_key"},
	"permission_error":      {invalidRequest, "permission_denied"},
	"not_found_error":       {invalidRequest, "not_found"},
	"request_too_large":     {invalidRequest, "request_too_large"},
	"rate_limit_error":      {"requests", "rate_limit_exceeded"},
	"billing_error":         {"insufficient_quota", "insufficient_quota"},
	"api_error":             {"server_error", ""},
	"timeout_error":         {"server_error", "timeout"},
	"overloaded_error":      {"server_error", "overloaded"},
}

// TranslateError maps Anthropic's {"type":"error","error":{"type","message"}}
// to OpenAI's error shape and status.
func (t *anthropicTranslator) TranslateError(status int, body []byte) *Error {
	if !gjson.ValidBytes(body) {
		return upstreamError(anthropicStatus(status), "the Anthropic backend returned status "+strconv.Itoa(status))
	}
	return anthropicError(status, gjson.GetBytes(body, "error"))
}

// anthropicError words an Anthropic error object for an OpenAI client.
func anthropicError(status int, e gjson.Result) *Error {
	status = anthropicStatus(status)
	msg := e.Get("message")
	if !e.IsObject() || msg.Type != gjson.String {
		return upstreamError(status, "the Anthropic backend returned status "+strconv.Itoa(status))
	}
	out := upstreamError(status, msg.Str)
	if m, ok := anthropicErrors[e.Get("type").Str]; ok {
		out.Type, out.Code = m.typ, m.code
	}
	return out
}

// FinalStatus implements FinalStatusReporter.
func (t *anthropicTranslator) FinalStatus() int { return t.resp.finalStatus() }
