package transform

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// maxBedrockJSON bounds a JSON (not streamed) response held to be
// translated whole.
const maxBedrockJSON = 32 << 20

func (t *bedrockTranslator) TranslateResponseHeaders(resp UpstreamResponse) (TranslatedResponseHeaders, error) {
	t.created = t.now().Unix()
	out, isStream, err := t.resp.begin(resp, "the Bedrock backend", "application/vnd.amazon.eventstream", resp.Status)
	if isStream {
		t.stream.init(t)
	}
	return out, err
}

func (t *bedrockTranslator) TranslateResponseBody(dst, chunk []byte, endOfStream bool) ([]byte, bool) {
	return t.resp.translate(dst, chunk, endOfStream, maxBedrockJSON, &t.stream, t), true
}

// translateWhole implements wholeTranslation.
func (t *bedrockTranslator) translateWhole(dst []byte) []byte { return t.translateResponse(dst) }

func (t *bedrockTranslator) Usage() (Usage, bool) { return t.usage, t.hasUsage }

// translateResponse writes the OpenAI chat.completion for a Converse
// response, or an OpenAI error body if it is not one.
func (t *bedrockTranslator) translateResponse(dst []byte) []byte {
	if t.resp.tooBig {
		return t.resp.failWhole(dst, upstreamError(502, "the Bedrock response is larger than "+strconv.Itoa(maxBedrockJSON)+" bytes"))
	}
	// A view, not a copy: the body is not written until the translation
	// is done, and nothing read from it is kept.
	r := gjson.Parse(unsafeString(t.resp.body))
	msg := r.Get("output.message")
	if !gjson.ValidBytes(t.resp.body) || !msg.IsObject() {
		return t.resp.failWhole(dst, upstreamError(502, "the Bedrock backend sent a response that is not a Converse response"))
	}
	t.noteUsage(r.Get("usage"))
	dst = append(dst, `{"id":"bedrock","object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, t.created, 10)
	dst = append(dst, `,"model":`...)
	dst = gjson.AppendJSONString(dst, t.model)
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	text, reasoning := t.ans.text[:0], t.ans.reasoning[:0]
	hasText, hasReasoning := false, false
	content := msg.Get("content")
	content.ForEach(func(_, b gjson.Result) bool {
		// Read raw: Get would copy an escaped text.
		if s := rawMember(b, "text"); s.Type == gjson.String {
			text, hasText = appendStr(text, s), true
		}
		if s := rawMember(rawMember(rawMember(b, "reasoningContent"), "reasoningText"), "text"); s.Type == gjson.String {
			reasoning, hasReasoning = appendStr(reasoning, s), true
		}
		return true
	})
	dst = appendJoined(dst, text, hasText, reasoning, hasReasoning)
	t.ans.text, t.ans.reasoning = kept(text), kept(reasoning)
	calls := 0
	content.ForEach(func(_, b gjson.Result) bool {
		tu := b.Get("toolUse")
		if !tu.IsObject() {
			return true
		}
		if calls == 0 {
			dst = append(dst, `,"tool_calls":[`...)
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = appendStringOr(dst, tu.Get("toolUseId"), "call_"+strconv.Itoa(calls))
		dst = append(dst, `,"type":"function","function":{"name":`...)
		dst = appendStringOr(dst, tu.Get("name"), "")
		dst = append(dst, `,"arguments":`...)
		if in := tu.Get("input"); in.IsObject() {
			dst = gjson.AppendJSONString(dst, in.Raw)
		} else {
			dst = append(dst, `"{}"`...)
		}
		dst = append(dst, "}}"...)
		calls++
		return true
	})
	if calls > 0 {
		dst = append(dst, ']')
	}
	dst = append(dst, `},"logprobs":null,"finish_reason":`...)
	dst = appendBedrockStopReason(dst, r.Get("stopReason"))
	dst = append(dst, `}],"usage":`...)
	dst = t.appendUsage(dst)
	return append(dst, '}')
}

// noteUsage reads Converse's usage (the last one seen is the exchange's).
func (t *bedrockTranslator) noteUsage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	var in, out, total, read, write uint64
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "inputTokens":
			in = count(v)
		case "outputTokens":
			out = count(v)
		case "totalTokens":
			total = count(v)
		case "cacheReadInputTokens":
			read = count(v)
		case "cacheWriteInputTokens":
			write = count(v)
		}
		return true
	})
	// Like Anthropic's, Bedrock's inputTokens count neither cache reads nor
	// cache writes; OpenAI's prompt_tokens count both.
	input := addTokens(addTokens(in, read), write)
	if total < addTokens(input, out) {
		total = addTokens(input, out)
	}
	t.usage = Usage{InputTokens: input, CachedInputTokens: read, OutputTokens: out, TotalTokens: total}
	t.cacheWrite = write
	t.hasUsage = true
}

// appendUsage writes the usage in OpenAI's shape.
func (t *bedrockTranslator) appendUsage(dst []byte) []byte {
	u := t.usage
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendUint(dst, u.InputTokens, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendUint(dst, u.OutputTokens, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendUint(dst, u.TotalTokens, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendUint(dst, u.CachedInputTokens, 10)
	return append(dst, "}}"...)
}

// bedrockStopReasons maps Converse's stopReason to OpenAI's finish_reason;
// others (newer) are "stop".
var bedrockStopReasons = map[string]string{
	"end_turn":                      "stop",
	"stop_sequence":                 "stop",
	"max_tokens":                    "length",
	"model_context_window_exceeded": "length",
	"tool_use":                      "tool_calls",
	"guardrail_intervened":          "content_filter",
	"content_filtered":              "content_filter",
}

func appendBedrockStopReason(dst []byte, reason gjson.Result) []byte {
	if reason.Type != gjson.String || reason.Str == "" {
		return append(dst, "null"...)
	}
	fr, ok := bedrockStopReasons[reason.Str]
	if !ok {
		fr = "stop"
	}
	return append(append(append(dst, '"'), fr...), '"')
}

// bedrockStatusErrors maps Bedrock's error statuses (its exceptions) to
// OpenAI's type and code.
var bedrockStatusErrors = map[int]struct{ typ, code string }{
	400: {invalidRequest, "validation_error"},
	403: {invalidRequest, "permission_denied"},
	404: {invalidRequest, "not_found"},
	408: {"server_error", "timeout"},
	424: {"server_error", "model_error"},
	429: {"requests", "rate_limit_exceeded"},
	500: {"server_error", ""},
	503: {"server_error", "overloaded"},
}

// TranslateError maps Bedrock's {"message":"..."} error bodies (the
// exception's name is in a header, its meaning in the status) to OpenAI's
// error shape; the status stays.
func (t *bedrockTranslator) TranslateError(status int, body []byte) *Error {
	msg := gjson.GetBytes(body, "message")
	if !gjson.ValidBytes(body) || msg.Type != gjson.String {
		msg = gjson.GetBytes(body, "Message")
	}
	if msg.Type != gjson.String {
		return upstreamError(status, "the Bedrock backend returned status "+strconv.Itoa(status))
	}
	e := upstreamError(status, msg.Str)
	if m, ok := bedrockStatusErrors[status]; ok {
		e.Type, e.Code = m.typ, m.code
	}
	return e
}

// bedrockExceptions maps the exception types a Converse stream can end
// with to the status an OpenAI client would have seen.
var bedrockExceptions = map[string]int{
	"internalServerException":     500,
	"modelStreamErrorException":   424,
	"validationException":         400,
	"throttlingException":         429,
	"serviceUnavailableException": 503,
}

// FinalStatus implements FinalStatusReporter.
func (t *bedrockTranslator) FinalStatus() int { return t.resp.finalStatus() }
