package transform

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Meter accounts one response from its body as it passes: token usage, the
// model the server reports, and when the first content arrived. It reads the
// original upstream bytes and never changes them. Feed every body chunk to
// Write, then call Finish once, even when the stream is cut short (a gzip
// body holds a suspended decoder until then).
//
// A Meter is used by one stream at a time.
type Meter struct {
	endpoint Endpoint
	kind     bodyKind
	now      time.Time
	sse      sseParser
	template eventTemplate // the last streamed event read in full, to compare the next with
	walker   jsonWalker
	gz       *gunzipper
	captures [2]capture // model and usage of a JSON body
	active   *capture   // the capture a chunk ended in
	report   Report
	opened   bool // a JSON body's first byte was seen
	finished bool
}

type bodyKind uint8

const (
	bodyIgnored bodyKind = iota // not accounted: an error status, another content type or encoding
	bodyJSON
	bodySSE
)

// capture keeps the bytes of one JSON value as they pass.
type capture struct {
	buf      []byte
	from     int  // where the value starts in the chunk being walked
	tooLarge bool // over maxCapture: given up
	complete bool
}

// maxCapture bounds a captured model or usage value.
const maxCapture = 64 << 10

// Report is what a Meter learned from one response.
type Report struct {
	Status   int
	Streamed bool // the body was an SSE stream
	// Usage is the usage the server reported, if HasUsage: from a JSON body,
	// from the usage chunk of a stream, or from a Responses API
	// response.completed (or .incomplete, .failed) event.
	Usage    Usage
	HasUsage bool
	// Model is the model the response names ("" if none): the metrics'
	// response model.
	Model string
	// FirstContent is when the first event carrying content (text,
	// reasoning, a refusal or a tool call) arrived; zero if none did.
	FirstContent time.Time
	// ContentEvents counts events carrying content, and ContentBytes the
	// bytes of that content (JSON string contents as sent, escapes included;
	// tool calls as raw JSON): what estimates a stream's output without usage.
	ContentEvents int
	ContentBytes  int
	Done          bool  // the stream ended with data: [DONE]
	StreamError   bool  // an event carried an "error" object
	Err           error // why the body could not be accounted, if it could not
}

// NewMeter returns a Meter for a response to a request for endpoint ep, from
// its status and content-type and content-encoding headers. Bodies of non-2xx
// responses are not read: they count as errors without usage. gzip bodies
// are decoded for accounting only.
func NewMeter(ep Endpoint, status int, contentType, contentEncoding string) *Meter {
	m := new(Meter)
	m.Reset(ep, status, contentType, contentEncoding)
	return m
}

// Reset makes m the Meter NewMeter(ep, status, contentType,
// contentEncoding) returns, keeping the buffers m grew for an earlier
// response: a filter that keeps its Meter meters each response without an
// allocation. The Report of an earlier Finish may alias those buffers (its
// Model): it must not be used after Reset.
func (m *Meter) Reset(ep Endpoint, status int, contentType, contentEncoding string) {
	*m = Meter{endpoint: ep, report: Report{Status: status},
		captures: [2]capture{{buf: m.captures[0].buf[:0]}, {buf: m.captures[1].buf[:0]}},
		template: eventTemplate{buf: m.template.buf[:0]}}
	m.reset(status, contentType, contentEncoding)
}

func (m *Meter) reset(status int, contentType, contentEncoding string) {
	if status < 200 || status > 299 {
		return
	}
	mt := mediaType(contentType)
	switch {
	case mt == "text/event-stream":
		m.kind = bodySSE
		m.report.Streamed = true
	case contentType == "", mt == "application/json", strings.HasSuffix(mt, "+json"):
		m.kind = bodyJSON
		m.walker.watch = fieldModel.bit() | fieldUsage.bit()
	default:
		return
	}
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		m.gz = newGunzipper(m.feed)
	default:
		m.report.Err = fmt.Errorf("content-encoding %q is not supported for accounting", contentEncoding)
		m.kind = bodyIgnored
	}
}

// Stream reports whether the body is an SSE stream the meter reads (in
// whatever encoding).
func (m *Meter) Stream() bool { return m.kind == bodySSE }

// Write accounts a chunk of the response body received at now. The chunk is
// not kept after Write returns.
func (m *Meter) Write(chunk []byte, now time.Time) {
	if m.kind == bodyIgnored || m.finished {
		return
	}
	m.now = now
	if m.gz != nil {
		m.gz.write(chunk)
		return
	}
	m.feed(chunk)
}

// Finish ends the body, at now, and returns the report. Its Model may
// alias m's buffers: valid until m is Reset.
func (m *Meter) Finish(now time.Time) Report {
	if m.finished {
		return m.report
	}
	m.finished = true
	m.now = now
	if m.gz != nil {
		if err := m.gz.close(); err != nil {
			m.report.Err = fmt.Errorf("gzip body: %w", err)
		}
	}
	switch m.kind {
	case bodySSE:
		m.sse.close(m)
	case bodyJSON:
		if c := &m.captures[0]; c.complete {
			// A string without escapes is a view into c.buf, which stays
			// as it is until Reset.
			m.report.Model = capturedString(c.buf)
		}
		if c := &m.captures[1]; c.complete {
			m.report.Usage, m.report.HasUsage = usageOfRaw(unsafeString(c.buf))
		}
		m.captures = [2]capture{{buf: keepCapture(m.captures[0].buf)}, {buf: keepCapture(m.captures[1].buf)}}
	}
	return m.report
}

// feed accounts decoded body bytes. It reports whether it wants more: a
// JSON body is done when its document ends, or when it turns out not to be
// an object (no usage can be read from it), so a gzip body is not decoded
// further.
func (m *Meter) feed(b []byte) bool {
	if m.kind == bodySSE {
		m.sse.write(b, m)
		return true
	}
	if m.kind != bodyJSON {
		return false
	}
	if !m.opened {
		i := skipSpace(b, 0)
		if i == len(b) {
			return true
		}
		if m.opened = true; b[i] != '{' {
			m.report.Err = errNotJSONObject
			m.kind = bodyIgnored
			return false
		}
		if model, usage, end := wholeDocument(b, i); end >= 0 { // the usual answer: whole in one chunk
			if model.ok() {
				m.captures[0].whole(b[model.start:model.end])
			}
			if usage.ok() {
				m.captures[1].whole(b[usage.start:usage.end])
			}
			m.walker.ended = true
			return false
		}
	}
	if m.active != nil {
		m.active.from = 0
	}
	m.walker.walk(b, m)
	if m.active != nil { // the value goes on in the next chunk
		m.active.add(b[m.active.from:])
	}
	return !m.walker.ended
}

var errNotJSONObject = errors.New("the body is not a JSON object")

func (m *Meter) fieldStart(f field, b []byte, i int) {
	c := &m.captures[0]
	if f == fieldUsage {
		c = &m.captures[1]
	}
	*c = capture{buf: c.buf[:0], from: i}
	m.active = c
}

func (m *Meter) fieldEnd(_ field, b []byte, i int) {
	if c := m.active; c != nil {
		c.add(b[c.from : i+1])
		c.complete = !c.tooLarge
		m.active = nil
	}
}

// capturedString is gjson.Parse(raw).Str for a captured value: the text of
// a string without escapes (the usual model name) is read here, a view
// into raw, without gjson's parse (about 180 instructions, issue 11).
func capturedString(raw []byte) string {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		text := raw[1 : n-1]
		plain := true
		for _, c := range text {
			if c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return unsafeString(text)
		}
	}
	return gjson.Parse(unsafeString(raw)).Str
}

// whole captures a value read whole, as fieldStart and fieldEnd do.
func (c *capture) whole(v []byte) {
	*c = capture{buf: c.buf[:0]}
	c.add(v)
	c.complete = !c.tooLarge
}

// keepCapture is what a finished capture keeps for the next response:
// its room, unless it grew large.
func keepCapture(b []byte) []byte {
	if cap(b) > 4<<10 {
		return nil
	}
	return b // its bytes stay: the report's Model may alias them
}

func (c *capture) add(b []byte) {
	if c.tooLarge {
		return
	}
	if len(c.buf)+len(b) > maxCapture {
		c.buf, c.tooLarge = nil, true
		return
	}
	c.buf = append(c.buf, b...)
}

func (m *Meter) noteModel(v gjson.Result) {
	if m.report.Model == "" && v.Type == gjson.String {
		m.report.Model = strings.Clone(v.Str)
	}
}

func (m *Meter) noteUsage(v gjson.Result) {
	if u, ok := usageOf(v); ok {
		m.report.Usage, m.report.HasUsage = u, true
	}
}

// contentLen is the length of raw JSON content: a string's bytes between
// its quotes (escapes as sent), a non-empty array or object whole; 0 for
// anything else.
func contentLen(raw []byte) int {
	if nonEmpty(raw) {
		if raw[0] == '"' {
			return len(raw) - 2
		}
		return len(raw)
	}
	return 0
}

// toolCallLen is the content of raw tool_calls (an array) or function_call
// (an object): the bytes of the functions' names and arguments, at least 1
// for a non-empty call (the JSON around them is not generated text).
func toolCallLen(raw []byte) int {
	if !nonEmpty(raw) {
		return 0
	}
	n := 0
	add := func(call gjson.Result) {
		for _, f := range [...]string{"name", "arguments"} {
			if v := call.Get(f); v.Type == gjson.String {
				n += len(v.Raw) - 2
			}
		}
	}
	v := gjson.Parse(unsafeString(raw))
	if v.IsArray() {
		v.ForEach(func(_, c gjson.Result) bool {
			add(c.Get("function"))
			return true
		})
	} else {
		add(v)
	}
	return max(n, 1)
}

// nonEmpty reports whether raw JSON is a non-empty string, array or object.
func nonEmpty(raw []byte) bool {
	switch raw[0] {
	case '"':
		return len(raw) > 2
	case '[', '{':
		return !emptyContainer(unsafeString(raw))
	}
	return false
}
