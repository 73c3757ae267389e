package transform

import (
	"bytes"
	"strconv"

	"github.com/tidwall/gjson"
)

// maxAnthropicEvent bounds one SSE line (and one event's data) held between
// chunks. Anthropic's events are small deltas; a longer line is a broken or
// hostile upstream, and the stream ends with an error.
const maxAnthropicEvent = 4 << 20

// maxToolBlocks bounds the content block indexes that can carry tool calls.
const maxToolBlocks = 1 << 12

// anthropicStream turns Anthropic's Messages SSE events into OpenAI
// chat.completion.chunk events as each event's line completes (sseEvents
// splits them).
type anthropicStream struct {
	t      *anthropicTranslator
	events sseEvents
	prefix []byte // `data: {"id":...,"model":...,"choices":[{"index":0,"delta":`
	tools  []int  // content block index → tool call index + 1
	nTools int
	ended  bool // message_stop or an error event came: the rest is ignored
}

func (s *anthropicStream) init(t *anthropicTranslator) {
	s.t = t
	s.events.start("the Anthropic backend", maxAnthropicEvent)
	s.setPrefix(gjson.Result{Type: gjson.String, Raw: `"msg"`, Str: "msg"}, gjson.Result{})
}

// recycled returns a new anthropicStream with s's buffers, emptied (and
// bounded), for the next exchange.
func (s *anthropicStream) recycled() anthropicStream {
	return anthropicStream{events: s.events.recycled(), prefix: kept(s.prefix), tools: kept(s.tools)}
}

// setPrefix writes the start every chunk shares, with the message's id
// and model.
func (s *anthropicStream) setPrefix(id, model gjson.Result) {
	p := append(s.prefix[:0], `data: {"id":`...)
	p = appendStringOr(p, id, "msg")
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = strconv.AppendInt(p, s.t.created, 10)
	p = append(p, `,"model":`...)
	p = s.t.appendModel(p, model)
	s.prefix = append(p, `,"choices":[{"index":0,"delta":`...)
}

// write appends the translation of chunk to dst.
func (s *anthropicStream) write(dst, b []byte) []byte { return s.events.write(dst, b, s) }

// close ends the stream. One that ends before message_stop was cut: the
// client gets an error event rather than a stream that looks complete.
func (s *anthropicStream) close(dst []byte) []byte {
	dst = s.events.flush(dst, s)
	if !s.ended {
		dst = s.fail(dst, "the Anthropic stream ended before message_stop")
	}
	return dst
}

func (s *anthropicStream) finished() bool { return s.ended }

func (s *anthropicStream) onEvent(dst, data []byte) []byte { return s.event1(dst, data) }

// event1 translates one event. scanTopLevel validates it and finds its
// members in one pass without allocating; gjson reads the rare events'
// nested values.
func (s *anthropicStream) event1(dst, data []byte) []byte {
	var typ, index, delta []byte
	valid := scanTopLevel(data, func(k, v span) bool {
		if !k.ok() {
			return false
		}
		switch keyName(data, k) {
		case "type":
			typ = data[v.start:v.end]
		case "index":
			index = data[v.start:v.end]
		case "delta":
			delta = data[v.start:v.end]
		}
		return true
	})
	if !valid {
		return s.fail(dst, "the Anthropic backend sent an event that is not JSON")
	}
	switch string(typ) {
	case `"content_block_delta"`: // nearly every event: kept off gjson
		return s.blockDelta(dst, index, delta)
	case `"message_start"`:
		m := gjson.Get(unsafeString(data), "message")
		s.setPrefix(m.Get("id"), m.Get("model"))
		s.t.noteUsage(m.Get("usage"))
		return s.end(append(s.start(dst), `{"role":"assistant","content":""}`...), gjson.Result{})
	case `"content_block_start"`:
		ev := gjson.Parse(unsafeString(data))
		return s.blockStart(dst, ev.Get("index"), ev.Get("content_block"))
	case `"message_delta"`:
		ev := gjson.Parse(unsafeString(data))
		s.t.noteUsage(ev.Get("usage"))
		if sr := ev.Get("delta.stop_reason"); sr.Type == gjson.String {
			return s.end(append(s.start(dst), `{}`...), sr)
		}
	case `"message_stop"`:
		s.ended = true
		if s.t.includeUsage {
			dst = append(dst, s.prefix[:bytes.LastIndex(s.prefix, []byte(`[{`))]...)
			dst = append(dst, `[],"usage":`...)
			dst = s.t.appendUsage(dst)
			dst = append(dst, "}\n\n"...)
		}
		return append(dst, "data: [DONE]\n\n"...)
	case `"error"`:
		s.ended = true
		return s.errorEvent(dst, anthropicError(500, gjson.Get(unsafeString(data), "error")))
	}
	// ping, content_block_stop and event types newer than this code.
	return dst
}

func (s *anthropicStream) blockStart(dst []byte, index, block gjson.Result) []byte {
	switch block.Get("type").Str {
	case "text":
		if text := block.Get("text"); text.Type == gjson.String && text.Str != "" {
			return s.delta(dst, `{"content":`, []byte(text.Raw), `}`)
		}
	case "thinking":
		if text := block.Get("thinking"); text.Type == gjson.String && text.Str != "" {
			return s.delta(dst, `{"reasoning_content":`, []byte(text.Raw), `}`)
		}
	case "tool_use":
		i := index.Int()
		if index.Type != gjson.Number || i < 0 || i >= maxToolBlocks {
			return s.fail(dst, "the Anthropic backend sent a tool_use block without a usable index")
		}
		for int64(len(s.tools)) <= i {
			s.tools = append(s.tools, 0)
		}
		s.nTools++
		s.tools[i] = s.nTools
		d := append(s.start(dst), `{"tool_calls":[{"index":`...)
		d = strconv.AppendInt(d, int64(s.nTools-1), 10)
		d = append(d, `,"id":`...)
		d = appendStringOr(d, block.Get("id"), "")
		d = append(d, `,"type":"function","function":{"name":`...)
		d = appendStringOr(d, block.Get("name"), "")
		d = append(d, `,"arguments":`...)
		// Streamed tool input comes as input_json_delta; an input given
		// whole here is sent as the first arguments.
		if in := block.Get("input"); in.IsObject() && !emptyContainer(in.Raw) {
			d = gjson.AppendJSONString(d, in.Raw)
		} else {
			d = append(d, `""`...)
		}
		d = append(d, "}}]}"...)
		return s.end(d, gjson.Result{})
	}
	return dst
}

// blockDelta translates a content_block_delta from the raw JSON of its
// index and delta (valid: event1 scanned them).
func (s *anthropicStream) blockDelta(dst, index, delta []byte) []byte {
	var typ, text, thinking, partial []byte
	scanTopLevel(delta, func(k, v span) bool {
		if !k.ok() {
			return false
		}
		switch keyName(delta, k) {
		case "type":
			typ = delta[v.start:v.end]
		case "text":
			text = delta[v.start:v.end]
		case "thinking":
			thinking = delta[v.start:v.end]
		case "partial_json":
			partial = delta[v.start:v.end]
		}
		return true
	})
	switch string(typ) {
	case `"text_delta"`:
		if isJSONString(text) {
			return s.delta(dst, `{"content":`, text, `}`)
		}
	case `"thinking_delta"`:
		if isJSONString(thinking) {
			return s.delta(dst, `{"reasoning_content":`, thinking, `}`)
		}
	case `"input_json_delta"`:
		i, err := strconv.ParseInt(unsafeString(index), 10, 64)
		if err != nil || i < 0 || i >= int64(len(s.tools)) || s.tools[i] == 0 || !isJSONString(partial) {
			return dst // not a tool block we opened: nothing to attach it to
		}
		dst = strconv.AppendInt(append(s.start(dst), `{"tool_calls":[{"index":`...), int64(s.tools[i]-1), 10)
		dst = append(append(append(dst, `,"function":{"arguments":`...), partial...), `}}]}`...)
		return s.end(dst, gjson.Result{})
	}
	// signature_delta, citations_delta and newer delta types.
	return dst
}

// isJSONString reports whether raw, a valid JSON value, is a string.
func isJSONString(raw []byte) bool { return len(raw) > 0 && raw[0] == '"' }

// start appends the start of a chat.completion.chunk event, up to its
// delta; end closes it with a finish reason (a stop_reason, or none).
func (s *anthropicStream) start(dst []byte) []byte { return append(dst, s.prefix...) }

func (s *anthropicStream) end(dst []byte, stopReason gjson.Result) []byte {
	dst = append(dst, `,"logprobs":null,"finish_reason":`...)
	dst = appendFinishReason(dst, stopReason)
	return append(dst, "}]}\n\n"...)
}

// delta appends a whole chunk whose delta is pre, a raw JSON value, post.
func (s *anthropicStream) delta(dst []byte, pre string, raw []byte, post string) []byte {
	dst = append(append(append(s.start(dst), pre...), raw...), post...)
	return s.end(dst, gjson.Result{})
}

// errorEvent appends an OpenAI error event: {"error":{...}}, which OpenAI's
// SDKs raise as an error of the stream.
func (s *anthropicStream) errorEvent(dst []byte, e *Error) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, e.Body()...)
	return append(dst, "\n\n"...)
}

// fail ends the stream with an error event.
func (s *anthropicStream) fail(dst []byte, msg string) []byte {
	s.ended = true
	s.events.release()
	return s.errorEvent(dst, upstreamError(502, msg))
}
