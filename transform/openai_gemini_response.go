package transform

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// maxGeminiJSON bounds a JSON (not streamed) response held to be
// translated whole.
const maxGeminiJSON = 32 << 20

func (t *geminiTranslator) TranslateResponseHeaders(resp UpstreamResponse) (TranslatedResponseHeaders, error) {
	t.created = t.now().Unix()
	out, isStream, err := t.resp.begin(resp, "the Gemini backend", "text/event-stream", resp.Status)
	if isStream {
		t.stream.init(t)
	}
	return out, err
}

func (t *geminiTranslator) TranslateResponseBody(dst, chunk []byte, endOfStream bool) ([]byte, bool) {
	return t.resp.translate(dst, chunk, endOfStream, maxGeminiJSON, &t.stream, t), true
}

// translateWhole implements wholeTranslation.
func (t *geminiTranslator) translateWhole(dst []byte) []byte { return t.translateResponse(dst) }

func (t *geminiTranslator) Usage() (Usage, bool) { return t.usage, t.hasUsage }

// translateResponse writes the OpenAI chat.completion for a whole
// GenerateContentResponse, or an OpenAI error body if it is not one.
func (t *geminiTranslator) translateResponse(dst []byte) []byte {
	if t.resp.tooBig {
		return t.resp.failWhole(dst, upstreamError(502, "the Gemini response is larger than "+strconv.Itoa(maxGeminiJSON)+" bytes"))
	}
	// A view, not a copy: the body is not written until the translation
	// is done, and nothing read from it is kept.
	r := gjson.Parse(unsafeString(t.resp.body))
	if !gjson.ValidBytes(t.resp.body) || !r.IsObject() {
		return t.resp.failWhole(dst, upstreamError(502, "the Gemini backend sent a response that is not a GenerateContentResponse"))
	}
	if e := r.Get("error"); e.IsObject() { // an error under a 200
		return t.resp.failWhole(dst, googleError(500, e))
	}
	t.noteUsage(r.Get("usageMetadata"))
	cand := r.Get("candidates.0")
	if !cand.IsObject() {
		return t.resp.failWhole(dst, blockedPrompt(r.Get("promptFeedback")))
	}
	dst = append(dst, `{"id":`...)
	dst = appendStringOr(dst, r.Get("responseId"), "gemini")
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, t.created, 10)
	dst = append(dst, `,"model":`...)
	dst = t.appendModel(dst, r.Get("modelVersion"))
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	text, reasoning := t.ans.text[:0], t.ans.reasoning[:0]
	hasText, hasReasoning := false, false
	parts := cand.Get("content.parts")
	parts.ForEach(func(_, p gjson.Result) bool {
		if s := rawMember(p, "text"); s.Type == gjson.String { // read raw: Get would copy an escaped text
			if p.Get("thought").Type == gjson.True {
				reasoning, hasReasoning = appendStr(reasoning, s), true
			} else {
				text, hasText = appendStr(text, s), true
			}
		}
		return true
	})
	dst = appendJoined(dst, text, hasText, reasoning, hasReasoning)
	t.ans.text, t.ans.reasoning = kept(text), kept(reasoning)
	calls := 0
	parts.ForEach(func(_, p gjson.Result) bool {
		fc := p.Get("functionCall")
		if !fc.IsObject() {
			return true
		}
		if calls == 0 {
			dst = append(dst, `,"tool_calls":[`...)
		} else {
			dst = append(dst, ',')
		}
		dst = appendGeminiToolCall(dst, fc, calls, false)
		calls++
		return true
	})
	if calls > 0 {
		dst = append(dst, ']')
	}
	dst = append(dst, `},"logprobs":null,"finish_reason":`...)
	dst = appendGeminiFinishReason(dst, cand.Get("finishReason"), calls > 0)
	dst = append(dst, `}],"usage":`...)
	dst = t.appendUsage(dst)
	return append(dst, '}')
}

// appendGeminiToolCall writes a functionCall as an OpenAI tool call (with
// its index in a stream's delta): Gemini's id when it gives one, else
// call_N; the args object re-encoded as the arguments string.
func appendGeminiToolCall(dst []byte, fc gjson.Result, n int, withIndex bool) []byte {
	dst = append(dst, '{')
	if withIndex {
		dst = strconv.AppendInt(append(dst, `"index":`...), int64(n), 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"id":`...)
	if id := fc.Get("id"); id.Type == gjson.String && id.Str != "" {
		dst = append(dst, id.Raw...)
	} else {
		dst = strconv.AppendInt(append(dst, `"call_`...), int64(n), 10)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"type":"function","function":{"name":`...)
	dst = appendStringOr(dst, fc.Get("name"), "")
	dst = append(dst, `,"arguments":`...)
	if args := fc.Get("args"); args.IsObject() {
		dst = gjson.AppendJSONString(dst, args.Raw)
	} else {
		dst = append(dst, `"{}"`...)
	}
	return append(dst, "}}"...)
}

// appendModel names the backend's reported model version unless the
// backend overrides the model: then the client sees the model it asked
// for.
func (t *geminiTranslator) appendModel(dst []byte, reported gjson.Result) []byte {
	if t.backend.Model != "" || reported.Type != gjson.String || reported.Str == "" {
		return gjson.AppendJSONString(dst, t.model)
	}
	return append(dst, reported.Raw...)
}

// noteUsage reads usageMetadata. Gemini's counts are cumulative: the last
// one seen is the exchange's.
func (t *geminiTranslator) noteUsage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	var prompt, toolPrompt, cached, candidates, thoughts, total uint64
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "promptTokenCount":
			prompt = count(v)
		case "toolUsePromptTokenCount":
			toolPrompt = count(v)
		case "cachedContentTokenCount":
			cached = count(v)
		case "candidatesTokenCount":
			candidates = count(v)
		case "thoughtsTokenCount":
			thoughts = count(v)
		case "totalTokenCount":
			total = count(v)
		}
		return true
	})
	// OpenAI counts reasoning in completion_tokens and cached tokens in
	// prompt_tokens, as Gemini's promptTokenCount does.
	in := addTokens(prompt, toolPrompt)
	out := addTokens(candidates, thoughts)
	if total == 0 {
		total = addTokens(in, out)
	}
	t.usage = Usage{InputTokens: in, CachedInputTokens: cached, OutputTokens: out, ReasoningTokens: thoughts, TotalTokens: total}
	t.hasUsage = true
}

// appendUsage writes the usage in OpenAI's shape.
func (t *geminiTranslator) appendUsage(dst []byte) []byte {
	u := t.usage
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendUint(dst, u.InputTokens, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendUint(dst, u.OutputTokens, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendUint(dst, u.TotalTokens, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendUint(dst, u.CachedInputTokens, 10)
	dst = append(dst, `},"completion_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendUint(dst, u.ReasoningTokens, 10)
	return append(dst, "}}"...)
}

// geminiFinishReasons maps Gemini's finishReason to OpenAI's
// finish_reason. Reasons not listed (OTHER, MALFORMED_FUNCTION_CALL, newer
// ones) are "stop": the turn did end.
var geminiFinishReasons = map[string]string{
	"STOP":                      "stop",
	"MAX_TOKENS":                "length",
	"SAFETY":                    "content_filter",
	"RECITATION":                "content_filter",
	"BLOCKLIST":                 "content_filter",
	"PROHIBITED_CONTENT":        "content_filter",
	"SPII":                      "content_filter",
	"IMAGE_SAFETY":              "content_filter",
	"IMAGE_PROHIBITED_CONTENT":  "content_filter",
	"IMAGE_RECITATION":          "content_filter",
	"MODEL_ARMOR":               "content_filter",
	"UNEXPECTED_TOOL_CALL":      "stop",
	"MALFORMED_FUNCTION_CALL":   "stop",
	"FINISH_REASON_UNSPECIFIED": "stop",
}

// appendGeminiFinishReason writes the finish_reason: tool_calls when the
// turn ended normally with calls in it.
func appendGeminiFinishReason(dst []byte, reason gjson.Result, calls bool) []byte {
	if reason.Type != gjson.String || reason.Str == "" {
		return append(dst, "null"...)
	}
	fr, ok := geminiFinishReasons[reason.Str]
	if !ok {
		fr = "stop"
	}
	if fr == "stop" && calls {
		fr = "tool_calls"
	}
	return append(append(append(dst, '"'), fr...), '"')
}

// blockedPrompt is the error for a response without candidates: Gemini
// blocked the prompt (promptFeedback.blockReason), which OpenAI's content
// filters answer with 400 code content_filter.
func blockedPrompt(feedback gjson.Result) *Error {
	if reason := feedback.Get("blockReason"); reason.Type == gjson.String && reason.Str != "" {
		return &Error{Status: 400, Type: invalidRequest, Code: "content_filter",
			Message: "the Gemini backend blocked the prompt (" + reason.Str + ")"}
	}
	return upstreamError(502, "the Gemini backend sent a response without candidates")
}

// googleErrors maps Google's canonical error status to OpenAI's type and
// code.
var googleErrors = map[string]struct{ typ, code string }{
	"INVALID_ARGUMENT":    {invalidRequest, "invalid_argument"},
	"FAILED_PRECONDITION": {invalidRequest, "failed_precondition"},
	"OUT_OF_RANGE":        {invalidRequest, "out_of_range"},
	"UNAUTHENTICATED":     {invalidRequest, "invalid_api_key"},
	"PERMISSION_DENIED":   {invalidRequest, "permission_denied"},
	"NOT_FOUND":           {invalidRequest, "not_found"},
	"RESOURCE_EXHAUSTED":  {"requests", "rate_limit_exceeded"},
	"INTERNAL":            {"server_error", ""},
	"UNAVAILABLE":         {"server_error", "overloaded"},
	"DEADLINE_EXCEEDED":   {"server_error", "timeout"},
}

// TranslateError maps Google's {"error":{"code","message","status"}} (or
// a list holding one, as some Google front ends send) to OpenAI's error
// shape; the status stays.
func (t *geminiTranslator) TranslateError(status int, body []byte) *Error {
	if !gjson.ValidBytes(body) {
		return upstreamError(status, "the Gemini backend returned status "+strconv.Itoa(status))
	}
	r := gjson.ParseBytes(body)
	if r.IsArray() {
		r = r.Get("0")
	}
	return googleError(status, r.Get("error"))
}

// googleError words a Google error object for an OpenAI client.
func googleError(status int, e gjson.Result) *Error {
	msg := e.Get("message")
	if !e.IsObject() || msg.Type != gjson.String {
		return upstreamError(status, "the Gemini backend returned status "+strconv.Itoa(status))
	}
	out := upstreamError(status, msg.Str)
	if m, ok := googleErrors[e.Get("status").Str]; ok {
		out.Type, out.Code = m.typ, m.code
	}
	return out
}

// FinalStatus implements FinalStatusReporter.
func (t *geminiTranslator) FinalStatus() int { return t.resp.finalStatus() }
