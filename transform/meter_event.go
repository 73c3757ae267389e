package transform

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// data accounts the data of one SSE event.
//
// Most events of a stream differ from the one before only in the text of
// their content string: {"id":...,"choices":[{"index":0,"delta":{"content":"
// is the same for every token, and so is what follows the text. When an
// event has the bytes of the last event read in full around a valid string
// (the template), its JSON is the same but for that string, so only the
// string is scanned (see eventTemplate). Else the event is read in full
// (readEvent), and may become the template.
//
// What it counts is what a reading with nested scans counts
// (meter_reference_test.go): the members of the event in order up to the
// first error, each once its value is known to be valid, a "choices" member
// only once all of it is.
func (m *Meter) data(d []byte) {
	if raw, ok := m.template.match(d); ok {
		m.noteContent(contentLen(raw), m.template.delta)
		return
	}
	i := skipSpace(d, 0)
	if i == len(d) || d[i] != '{' { // [DONE], or nothing the meter reads
		if string(bytes.TrimSpace(d)) == "[DONE]" {
			m.report.Done = true
		}
		return
	}
	var e eventRead
	m.readEvent(d, i, &e)
	m.noteContent(e.content.n, e.delta)
	if e.complete && e.content.strings == 1 && !e.content.other {
		m.template.set(d, e.content.last, e.delta)
	} else {
		m.template.clear()
	}
}

func (m *Meter) noteContent(content int, delta bool) {
	if content > 0 || delta {
		m.report.ContentBytes += content
		m.report.ContentEvents++
		if m.report.FirstContent.IsZero() {
			m.report.FirstContent = m.now
		}
	}
}

// eventRead is what readEvent found in an event.
type eventRead struct {
	content  eventContent
	delta    bool // a Responses API delta event
	complete bool // the event object is valid to its end
}

// eventContent sums the content bytes of an event and remembers where its
// content strings are.
type eventContent struct {
	n       int
	strings int  // content strings seen
	last    span // the last of them, quotes included
	other   bool // content that is not a string (an array, an object, a tool call)
}

// add counts the content value d[v:end].
func (c *eventContent) add(d []byte, v, end int) {
	if d[v] == '"' {
		c.strings++
		c.last = span{v, end}
	} else {
		c.other = c.other || contentLen(d[v:end]) > 0
	}
	c.n += contentLen(d[v:end])
}

// readEvent walks the event object that starts at d[i], in one pass: it
// reads the few top-level members the meter wants and, inside "choices",
// only the choices' "text" and the members of their "delta"; everything
// else (ids, "usage":null, long strings) is jumped over with skipValue,
// which checks it without reporting anything.
func (m *Meter) readEvent(d []byte, i int, e *eventRead) {
	for j, _ := containerStart(d, i); j >= 0; {
		k, ke, v := memberKey(d, j)
		if v < 0 {
			return
		}
		var end int
		switch key := eventKey(d[k:ke]); key {
		case "choices":
			c := e.content
			if end = choicesContent(d, v, &c); end >= 0 {
				e.content = c // counted only when all of it is valid
			}
		case "delta": // Responses API: its text
			if end = skipValue(d, v, 1); end >= 0 {
				e.content.add(d, v, end)
			}
		default:
			if end = skipValue(d, v, 1); end >= 0 {
				m.eventMember(key, d[v:end], e)
			}
		}
		if end < 0 {
			return
		}
		next, more, ok := nextItem(d, end, true)
		if !more {
			e.complete = ok
			return
		}
		j = next
	}
	e.complete = true // {}
}

// eventMember notes the top-level member key of an event, whose valid
// value is raw.
func (m *Meter) eventMember(key string, raw []byte, e *eventRead) {
	switch key {
	case "model":
		if m.report.Model == "" {
			m.noteModel(gjson.Parse(unsafeString(raw)))
		}
	case "usage":
		if raw[0] == '{' {
			m.noteUsage(gjson.Parse(unsafeString(raw)))
		}
	case "type": // Responses API: response.output_text.delta and the like
		e.delta = e.delta || raw[0] == '"' && bytes.HasSuffix(raw, []byte(`.delta"`))
		// Its failures: an error event and a failed response.
		m.report.StreamError = m.report.StreamError || string(raw) == `"error"` || string(raw) == `"response.failed"`
	case "response":
		if raw[0] == '{' {
			r := gjson.Parse(unsafeString(raw))
			m.noteModel(r.Get("model"))
			m.noteUsage(r.Get("usage"))
		}
	case "error":
		m.report.StreamError = m.report.StreamError || raw[0] == '{' || raw[0] == '"'
	}
}

// choicesContent adds to c the generated content that the "choices" value
// starting at d[i] carries (see choiceContent; the choices may be an array
// or an object), and returns where the value ends: -1 when it is not
// valid, and then c is left half counted.
func choicesContent(d []byte, i int, c *eventContent) int {
	if i == len(d) || d[i] != '[' && d[i] != '{' {
		return skipValue(d, i, 1)
	}
	obj := d[i] == '{'
	j, end := containerStart(d, i)
	for j >= 0 {
		if obj {
			j = memberValue(d, j)
		} else {
			j = skipSpace(d, j)
		}
		if j < 0 || j == len(d) {
			return -1
		}
		if d[j] == '{' {
			end = choiceContent(d, j, c)
		} else {
			end = skipValue(d, j, 2)
		}
		if end < 0 {
			return -1
		}
		next, more, ok := nextItem(d, end, obj)
		switch {
		case !ok:
			return -1
		case !more:
			return next
		}
		j = next
	}
	return end
}

// choiceContent adds to c the content of the choice object starting at
// d[i] (text, reasoning, a refusal or a tool call): its "text"
// (completions), or the "content", "reasoning_content", "reasoning",
// "refusal", "tool_calls" or "function_call" of its "delta" object. It
// returns where the object ends (-1: invalid).
func choiceContent(d []byte, i int, c *eventContent) int {
	j, end := containerStart(d, i)
	for j >= 0 {
		k, ke, v := memberKey(d, j)
		if v < 0 {
			return -1
		}
		switch eventKey(d[k:ke]) {
		case "text":
			if end = skipValue(d, v, 3); end >= 0 {
				c.add(d, v, end)
			}
		case "delta":
			if v < len(d) && d[v] == '{' {
				end = deltaContent(d, v, c)
			} else {
				end = skipValue(d, v, 3)
			}
		default:
			end = skipValue(d, v, 3)
		}
		if end < 0 {
			return -1
		}
		next, more, ok := nextItem(d, end, true)
		switch {
		case !ok:
			return -1
		case !more:
			return next
		}
		j = next
	}
	return end
}

// deltaContent adds to c the content of the delta object starting at d[i]
// and returns where it ends (-1: invalid).
func deltaContent(d []byte, i int, c *eventContent) int {
	j, end := containerStart(d, i)
	for j >= 0 {
		k, ke, v := memberKey(d, j)
		if v < 0 {
			return -1
		}
		if end = skipValue(d, v, 4); end < 0 {
			return -1
		}
		switch eventKey(d[k:ke]) {
		case "content", "reasoning_content", "reasoning", "refusal":
			c.add(d, v, end)
		case "tool_calls", "function_call":
			if n := toolCallLen(d[v:end]); n > 0 {
				c.n += n
				c.other = true
			}
		}
		next, more, ok := nextItem(d, end, true)
		switch {
		case !ok:
			return -1
		case !more:
			return next
		}
		j = next
	}
	return end
}

// eventKey is the text of a quoted member key: its raw bytes (no copy)
// when they are one of the names events use, or hold no escape; else it is
// decoded.
func eventKey(quoted []byte) string {
	raw := quoted[1 : len(quoted)-1]
	switch string(raw) {
	case "id", "object", "created", "model", "choices", "usage", "index", "delta", "content", "role",
		"finish_reason", "logprobs", "text", "system_fingerprint", "type", "response", "error":
		return unsafeString(raw)
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return unsafeString(raw)
	}
	return gjson.Parse(unsafeString(quoted)).Str
}

// eventTemplate is the last event read in full, when its one content
// string is all of its content and it is valid to its end, cut around that
// string: prefix ends with the string's opening quote and suffix starts
// with its closing quote. An event that is prefix, the text of a valid
// string, then suffix is that event's JSON with another string in the same
// place: it counts the same but for the string's length. Replaying the
// rest is not needed: every event read in full replaces or clears the
// template, so the usage it noted is still the last one noted, its model
// is noted only while none is (so it was, or it is not a string), and a
// stream error, once noted, stays.
type eventTemplate struct {
	buf    []byte // prefix then suffix
	prefix int    // len(prefix); 0: no template
	delta  bool   // the event is a Responses API delta event
}

// maxTemplate bounds the bytes a template keeps; longer events are read in
// full every time.
const maxTemplate = 4 << 10

// match returns the content string of d, quotes included, if d is the
// template around a valid string.
func (t *eventTemplate) match(d []byte) ([]byte, bool) {
	if t.prefix == 0 || len(d) < len(t.buf) || string(d[:t.prefix]) != string(t.buf[:t.prefix]) {
		return nil, false
	}
	suffix := t.buf[t.prefix:]
	end := scanString(d, t.prefix)
	if end != len(d)-len(suffix)+1 || string(d[end-1:]) != string(suffix) {
		return nil, false
	}
	return d[t.prefix-1 : end], true
}

// set makes d, whose content string is s, the template.
func (t *eventTemplate) set(d []byte, s span, delta bool) {
	if len(d)-(s.end-s.start)+2 > maxTemplate {
		t.clear()
		return
	}
	if n := len(d) - (s.end - s.start) + 2; cap(t.buf) < n {
		t.buf = make([]byte, 0, max(n, 512)) // one allocation a stream, as a rule
	}
	t.buf = append(append(t.buf[:0], d[:s.start+1]...), d[s.end-1:]...)
	t.prefix, t.delta = s.start+1, delta
}

func (t *eventTemplate) clear() { t.prefix = 0 }
