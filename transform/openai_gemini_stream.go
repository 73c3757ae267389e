package transform

import (
	"bytes"
	"strconv"
	"strings"

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
	s.events = sseEvents{who: "the Gemini backend", max: maxGeminiEvent}
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

// onEvent translates one GenerateContentResponse.
func (s *geminiStream) onEvent(dst, data []byte) []byte {
	if !gjson.ValidBytes(data) {
		return s.fail(dst, "the Gemini backend sent an event that is not JSON")
	}
	r := gjson.Parse(unsafeString(data)) // not kept past this call
	if !r.IsObject() {
		return s.fail(dst, "the Gemini backend sent an event that is not a GenerateContentResponse")
	}
	if e := r.Get("error"); e.IsObject() {
		s.ended = true
		s.events.release()
		return s.errorEvent(dst, googleError(500, e))
	}
	s.t.noteUsage(r.Get("usageMetadata"))
	cand := r.Get("candidates.0")
	if !cand.IsObject() {
		if fb := r.Get("promptFeedback"); fb.Get("blockReason").Exists() {
			s.ended = true
			s.events.release()
			return s.errorEvent(dst, blockedPrompt(fb))
		}
		return dst // a usage-only event
	}
	if !s.started {
		s.started = true
		s.setPrefix(r.Get("responseId"), r.Get("modelVersion"))
		dst = s.end(append(s.start(dst), `{"role":"assistant","content":""}`...), "null")
	}
	cand.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
		if text := p.Get("text"); text.Type == gjson.String && text.Str != "" {
			if p.Get("thought").Type == gjson.True {
				dst = s.delta(dst, `{"reasoning_content":`, text.Raw, `}`)
			} else {
				dst = s.delta(dst, `{"content":`, text.Raw, `}`)
			}
		}
		if fc := p.Get("functionCall"); fc.IsObject() {
			d := append(s.start(dst), `{"tool_calls":[`...)
			d = appendGeminiToolCall(d, fc, s.nCalls, true)
			dst = s.end(append(d, "]}"...), "null")
			s.nCalls++
		}
		return true
	})
	if fr := cand.Get("finishReason"); fr.Type == gjson.String && fr.Str != "" && s.reason.Type != gjson.String {
		s.reason = gjson.Result{Type: gjson.String, Str: strings.Clone(fr.Str)}
		d := append(s.start(dst), `{}`...)
		d = append(d, `,"logprobs":null,"finish_reason":`...)
		d = appendGeminiFinishReason(d, s.reason, s.nCalls > 0)
		dst = append(d, "}]}\n\n"...)
	}
	return dst
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

func (s *geminiStream) delta(dst []byte, pre, raw, post string) []byte {
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
