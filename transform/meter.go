package transform

import (
	"bytes"
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
	walker   jsonWalker
	gz       *gunzipper
	captures [2]capture // model and usage of a JSON body
	active   *capture   // the capture a chunk ended in
	report   Report
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
	// ContentEvents counts events carrying content.
	ContentEvents int
	Done          bool  // the stream ended with data: [DONE]
	StreamError   bool  // an event carried an "error" object
	Err           error // why the body could not be accounted, if it could not
}

// NewMeter returns a Meter for a response to a request for endpoint ep, from
// its status and content-type and content-encoding headers. Bodies of non-2xx
// responses are not read: they count as errors without usage. gzip bodies
// are decoded for accounting only.
func NewMeter(ep Endpoint, status int, contentType, contentEncoding string) *Meter {
	m := &Meter{endpoint: ep, report: Report{Status: status}}
	if status < 200 || status > 299 {
		return m
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
		return m
	}
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		m.gz = newGunzipper(m.feed)
	default:
		m.report.Err = fmt.Errorf("content-encoding %q is not supported for accounting", contentEncoding)
		m.kind = bodyIgnored
	}
	return m
}

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

// Finish ends the body, at now, and returns the report.
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
			m.report.Model = gjson.ParseBytes(c.buf).Str
		}
		if c := &m.captures[1]; c.complete {
			m.report.Usage, m.report.HasUsage = usageOf(gjson.Parse(unsafeString(c.buf)))
		}
		m.captures = [2]capture{}
	}
	return m.report
}

// feed accounts decoded body bytes.
func (m *Meter) feed(b []byte) {
	if m.kind == bodySSE {
		m.sse.write(b, m)
		return
	}
	if m.active != nil {
		m.active.from = 0
	}
	m.walker.walk(b, m)
	if m.active != nil { // the value goes on in the next chunk
		m.active.add(b[m.active.from:])
	}
}

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

// data accounts the data of one SSE event. It reads the event with
// scanTopLevel, which skips what does not matter faster than gjson.
func (m *Meter) data(d []byte) {
	if string(bytes.TrimSpace(d)) == "[DONE]" {
		m.report.Done = true
		return
	}
	content := false
	scanTopLevel(d, func(k, v span) bool {
		if !k.ok() {
			return false
		}
		raw := d[v.start:v.end]
		switch keyName(d, k) {
		case "model":
			if m.report.Model == "" {
				m.noteModel(gjson.Parse(unsafeString(raw)))
			}
		case "usage":
			if raw[0] == '{' {
				m.noteUsage(gjson.Parse(unsafeString(raw)))
			}
		case "choices":
			content = content || choicesCarryContent(raw)
		case "type": // Responses API: response.output_text.delta and the like
			content = content || raw[0] == '"' && bytes.HasSuffix(raw, []byte(`.delta"`))
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
		return true
	})
	if content {
		m.report.ContentEvents++
		if m.report.FirstContent.IsZero() {
			m.report.FirstContent = m.now
		}
	}
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

// choicesCarryContent reports whether the raw "choices" of a chat or
// completion chunk carry generated content: text, reasoning, a refusal or a
// tool call.
func choicesCarryContent(choices []byte) bool {
	found := false
	scanTopLevel(choices, func(_, c span) bool {
		choice := choices[c.start:c.end]
		scanTopLevel(choice, func(k, v span) bool {
			if !k.ok() {
				return false
			}
			switch keyName(choice, k) {
			case "text": // completions
				found = nonEmpty(choice[v.start:v.end])
			case "delta":
				delta := choice[v.start:v.end]
				scanTopLevel(delta, func(k, v span) bool {
					if !k.ok() {
						return false
					}
					switch keyName(delta, k) {
					case "content", "reasoning_content", "reasoning", "refusal", "tool_calls", "function_call":
						found = nonEmpty(delta[v.start:v.end])
					}
					return !found
				})
			}
			return !found
		})
		return !found
	})
	return found
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
