package transform

import (
	"bytes"
	"strconv"

	"github.com/tidwall/gjson"
)

// maxGeminiEvent bounds one SSE line (and one event's data) held between
// chunks. Gemini's events are one GenerateContentResponse each, usually a
// few hundred bytes; an inline image can be larger.
const maxGeminiEvent = 16 << 20

// geminiStream turns streamGenerateContent's SSE events (alt=sse: each a
// whole GenerateContentResponse) into OpenAI chat.completion.chunk events
// as each completes. Gemini has no end-of-stream event: a finishReason
// marks the last candidate event, and usage may come with it or after;
// the usage chunk and [DONE] go out at the end of the body.
type geminiStream struct {
	t       *geminiTranslator
	events  sseEvents
	prefix  []byte // `data: {"id":...,"model":...,"choices":[{"index":0,"delta":`
	started bool   // the role chunk went out
	nCalls  int
	reason  gjson.Result // the finishReason seen (a copy), if any
	ended   bool         // an error ended the stream: the rest is ignored
}

func (s *geminiStream) init(t *geminiTranslator) {
	s.t = t
	s.events.start("the Gemini backend", maxGeminiEvent)
}

// recycled returns a new geminiStream with s's buffers, emptied (and
// bounded), for the next exchange.
func (s *geminiStream) recycled() geminiStream {
	return geminiStream{events: s.events.recycled(), prefix: kept(s.prefix)}
}

func (s *geminiStream) write(dst, b []byte) []byte { return s.events.write(dst, b, s) }

// close ends the stream: the finish chunk came, so the usage chunk (when
// asked for) and [DONE] follow; a stream without one was cut, and the
// client gets an error event rather than a stream that looks complete.
func (s *geminiStream) close(dst []byte) []byte {
	dst = s.events.flush(dst, s)
	if s.ended {
		return dst
	}
	if s.reason.Type != gjson.String {
		return s.fail(dst, "the Gemini stream ended before a finishReason")
	}
	s.ended = true
	if s.t.includeUsage && s.t.hasUsage {
		dst = append(dst, s.prefix[:bytes.LastIndex(s.prefix, []byte(`[{`))]...)
		dst = append(dst, `[],"usage":`...)
		dst = s.t.appendUsage(dst)
		dst = append(dst, "}\n\n"...)
	}
	return append(dst, "data: [DONE]\n\n"...)
}

func (s *geminiStream) finished() bool { return s.ended }

// geminiEvent is where the members of one GenerateContentResponse that
// the stream reads sit in its data.
type geminiEvent struct {
	candidates, usage, feedback, error, id, model []byte
}

// onEvent translates one GenerateContentResponse. scanTopLevel validates
// it and finds the members without allocating, level by level down to the
// first candidate's parts (nearly every event is text); gjson reads the
// rare members (errors, feedback, function calls, usage).
func (s *geminiStream) onEvent(dst, data []byte) []byte {
	var ev geminiEvent
	isObject := false
	valid := scanTopLevel(data, func(k, v span) bool {
		if !k.ok() {
			return false
		}
		isObject = true
		raw := data[v.start:v.end]
		switch keyName(data, k) {
		case "candidates":
			ev.candidates = raw
		case "usageMetadata":
			ev.usage = raw
		case "promptFeedback":
			ev.feedback = raw
		case "error":
			ev.error = raw
		case "responseId":
			ev.id = raw
		case "modelVersion":
			ev.model = raw
		}
		return true
	})
	if !valid {
		return s.fail(dst, "the Gemini backend sent an event that is not JSON")
	}
	if !isObject && !objectRaw(data) {
		return s.fail(dst, "the Gemini backend sent an event that is not a GenerateContentResponse")
	}
	if e := gjson.Parse(unsafeString(ev.error)); e.IsObject() {
		s.ended = true
		s.events.release()
		return s.errorEvent(dst, googleError(500, e))
	}
	if ev.usage != nil {
		s.t.noteUsage(gjson.Parse(unsafeString(ev.usage)))
	}
	cand := firstElement(ev.candidates)
	var content, finish []byte
	scanTopLevel(cand, func(k, v span) bool {
		if k.ok() {
			switch keyName(cand, k) {
			case "content":
				content = cand[v.start:v.end]
			case "finishReason":
				finish = cand[v.start:v.end]
			}
		}
		return true
	})
	if len(cand) == 0 || cand[0] != '{' {
		if fb := gjson.Parse(unsafeString(ev.feedback)); fb.Get("blockReason").Exists() {
			s.ended = true
			s.events.release()
			return s.errorEvent(dst, blockedPrompt(fb))
		}
		return dst // a usage-only event
	}
	if !s.started {
		s.started = true
		s.setPrefix(gjson.Parse(unsafeString(ev.id)), gjson.Parse(unsafeString(ev.model)))
		dst = s.end(append(s.start(dst), `{"role":"assistant","content":""}`...), "null")
	}
	var parts []byte
	scanTopLevel(content, func(k, v span) bool {
		if k.ok() && keyName(content, k) == "parts" {
			parts = content[v.start:v.end]
			return false
		}
		return true
	})
	if len(parts) > 0 && parts[0] == '[' {
		scanTopLevel(parts, func(_, p span) bool {
			dst = s.part(dst, parts[p.start:p.end])
			return true
		})
	}
	if len(finish) > 1 && finish[0] == '"' && s.reason.Type != gjson.String {
		s.reason = gjson.Result{Type: gjson.String, Str: keptFinishReason(gjson.Parse(unsafeString(finish)).Str)}
		if s.reason.Str == "" {
			s.reason = gjson.Result{}
			return dst
		}
		d := append(s.start(dst), `{}`...)
		d = append(d, `,"logprobs":null,"finish_reason":`...)
		d = appendGeminiFinishReason(d, s.reason, s.nCalls > 0)
		dst = append(d, "}]}\n\n"...)
	}
	return dst
}

// part translates one part of a candidate's content: text (or a
// thought) as a content (or reasoning_content) delta, a function call as a
// tool call.
func (s *geminiStream) part(dst, p []byte) []byte {
	var text, fc []byte
	thought := false
	scanTopLevel(p, func(k, v span) bool {
		if !k.ok() {
			return false
		}
		switch keyName(p, k) {
		case "text":
			text = p[v.start:v.end]
		case "thought":
			thought = string(p[v.start:v.end]) == "true"
		case "functionCall":
			fc = p[v.start:v.end]
		}
		return true
	})
	if isJSONString(text) && len(text) > 2 {
		if thought {
			dst = s.delta(dst, `{"reasoning_content":`, text, `}`)
		} else {
			dst = s.delta(dst, `{"content":`, text, `}`)
		}
	}
	if len(fc) > 0 && fc[0] == '{' {
		d := append(s.start(dst), `{"tool_calls":[`...)
		d = appendGeminiToolCall(d, gjson.Parse(unsafeString(fc)), s.nCalls, true)
		dst = s.end(append(d, "]}"...), "null")
		s.nCalls++
	}
	return dst
}

// firstElement returns the raw first element of a raw JSON array, or nil.
func firstElement(arr []byte) []byte {
	if len(arr) == 0 || arr[0] != '[' {
		return nil
	}
	var first []byte
	scanTopLevel(arr, func(_, v span) bool {
		first = arr[v.start:v.end]
		return false
	})
	return first
}

// objectRaw reports whether raw, a valid JSON value, is an object (one
// without members gives scanTopLevel no call).
func objectRaw(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// setPrefix writes the start every chunk shares, with the response's id
// and model.
func (s *geminiStream) setPrefix(id, model gjson.Result) {
	p := append(s.prefix[:0], `data: {"id":`...)
	p = appendStringOr(p, id, "gemini")
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = strconv.AppendInt(p, s.t.created, 10)
	p = append(p, `,"model":`...)
	p = s.t.appendModel(p, model)
	s.prefix = append(p, `,"choices":[{"index":0,"delta":`...)
}

func (s *geminiStream) start(dst []byte) []byte { return append(dst, s.prefix...) }

// end closes a chunk with finish_reason (raw JSON).
func (s *geminiStream) end(dst []byte, finish string) []byte {
	dst = append(append(dst, `,"logprobs":null,"finish_reason":`...), finish...)
	return append(dst, "}]}\n\n"...)
}

func (s *geminiStream) delta(dst []byte, pre string, raw []byte, post string) []byte {
	dst = append(append(append(s.start(dst), pre...), raw...), post...)
	return s.end(dst, "null")
}

// errorEvent appends an OpenAI error event, which OpenAI's SDKs raise.
func (s *geminiStream) errorEvent(dst []byte, e *Error) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, e.Body()...)
	return append(dst, "\n\n"...)
}

// fail ends the stream with an error event.
func (s *geminiStream) fail(dst []byte, msg string) []byte {
	s.ended = true
	s.events.release()
	return s.errorEvent(dst, upstreamError(502, msg))
}

// unknownFinishReason stands for a finishReason geminiFinishReasons does
// not know (which maps to "stop" as any such one does).
const unknownFinishReason = "unknown"

// keptFinishReason returns what a stream keeps of a finishReason r (a
// view into a chunk): the key of geminiFinishReasons equal to r, "" for
// "", else unknownFinishReason. It maps as r does, without a copy.
func keptFinishReason(r string) string {
	if r == "" {
		return ""
	}
	for k := range geminiFinishReasons {
		if k == r {
			return k
		}
	}
	return unknownFinishReason
}
