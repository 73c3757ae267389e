package transform

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// dataByNestedScans is the reference for Meter.data: how it read an event
// before issue 11, with a scanTopLevel for the event and three more for
// each "choices" member (one per level), each validating again.
func (m *Meter) dataByNestedScans(d []byte) {
	if string(bytes.TrimSpace(d)) == "[DONE]" {
		m.report.Done = true
		return
	}
	content, delta := 0, false
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
			content += choicesContentBytesByScans(raw)
		case "type": // Responses API: response.output_text.delta and the like
			delta = delta || raw[0] == '"' && bytes.HasSuffix(raw, []byte(`.delta"`))
			// Its failures: an error event and a failed response.
			m.report.StreamError = m.report.StreamError || string(raw) == `"error"` || string(raw) == `"response.failed"`
		case "delta": // its text
			content += contentLen(raw)
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
	if content > 0 || delta {
		m.report.ContentBytes += content
		m.report.ContentEvents++
		if m.report.FirstContent.IsZero() {
			m.report.FirstContent = m.now
		}
	}
}

// choicesContentBytesByScans (reference) returns the bytes of generated content (text,
// reasoning, a refusal or a tool call) the raw "choices" of a chat or
// completion chunk carry: > 0 when the chunk carries content.
func choicesContentBytesByScans(choices []byte) int {
	n := 0
	scanTopLevel(choices, func(_, c span) bool {
		choice := choices[c.start:c.end]
		scanTopLevel(choice, func(k, v span) bool {
			if !k.ok() {
				return false
			}
			switch keyName(choice, k) {
			case "text": // completions
				n += contentLen(choice[v.start:v.end])
			case "delta":
				delta := choice[v.start:v.end]
				scanTopLevel(delta, func(k, v span) bool {
					if !k.ok() {
						return false
					}
					switch keyName(delta, k) {
					case "content", "reasoning_content", "reasoning", "refusal":
						n += contentLen(delta[v.start:v.end])
					case "tool_calls", "function_call":
						n += toolCallLen(delta[v.start:v.end])
					}
					return true
				})
			}
			return true
		})
		return true
	})
	return n
}

// meterEventCases are SSE event data with every field the meter reads, in
// the places and types where it reads them and in others, valid and cut or
// broken at the points where the one-pass scan could count too much.
var meterEventCases = []string{
	`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}`,
	`{"model":"m","choices":[{"delta":{"content":"a","reasoning_content":"bb","reasoning":"c","refusal":"dd"}},{"delta":{"content":"e"}}]}`,
	`{"choices":[{"text":"completion"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
	`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}`,
	`{"choices":[{"delta":{"function_call":{"name":"g","arguments":"{}"}}}]}`,
	`{"choices":[{"delta":{"tool_calls":[]}}]}`,
	`{"choices":{"first":{"delta":{"content":"in an object"}}}}`,
	`{"choices":[[{"delta":{"content":"an array choice"}}]]}`,
	`{"choices":[{"delta":[{"content":"an array delta"}]}]}`,
	`{"choices":[{"delta":{"content":{"nested":"deeper"}}}]}`,
	`{"choices":[{"delta":{"content":["a"]}}]}`,
	`{"choices":[{"delta":{"content":""}},{"text":""}]}`,
	`{"choices":[{"delta":{"content":"x"}}],"choices":[{"text":"twice"}]}`,
	`{"ch\u006fices":[{"d\u0065lta":{"c\u006fntent":"escaped keys"}}]}`,
	`{"usage":{"choices":[{"delta":{"content":"not here"}}]},"other":{"text":"no"}}`,
	`{"delta":{"content":"not a chat delta"},"text":"top"}`,
	`{"type":"response.output_text.delta","delta":"hello"}`,
	`{"type":"response.completed","response":{"model":"r","usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}}`,
	`{"type":"error","error":{"message":"x"}}`,
	`{"type":"response.failed"}`,
	`{"error":"boom"}`,
	`[{"choices":[{"delta":{"content":"top-level array"}}]}]`,
	`"scalar"`,
	`{"choices":[{"delta":{"content":"cut before the end"}}]`,
	`{"choices":[{"delta":{"content":"broken after"}}]x}`,
	`{"choices":[{"delta":{"content":"broken inside"}}, oops]}`,
	`{"choices":[{"delta":{"content":"broken member"} "x":1}]}`,
	`{"model":"m","usage":{"prompt_tokens":5},"choices":[{"delta":{"content":"ok"}}],"x":tru}`,
	`{"model":"m",broken,"choices":[{"delta":{"content":"never read"}}]}`,
	` [DONE] `,
}

func TestMeterEventMatchesNestedScans(t *testing.T) {
	for _, tc := range meterEventCases {
		t.Run(tc, func(t *testing.T) {
			requireSameEventReport(t, []byte(tc))
		})
	}
}

// requireSameEventReport checks that Meter.data reports on d what the
// reference reading with nested scans reports.
func requireSameEventReport(t *testing.T, d []byte) {
	now := time.Unix(1700000000, 0)
	got := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
	want := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
	got.now, want.now = now, now
	got.data(d)
	want.dataByNestedScans(d)
	require.Equal(t, want.report, got.report)
}

// FuzzMeterEvent checks the one-pass reading of an SSE event against the
// reference with nested scans: the same report for any data, valid or not.
func FuzzMeterEvent(f *testing.F) {
	for _, tc := range meterEventCases {
		f.Add([]byte(tc))
	}
	addFixtures(f, "*/*.sse", func(b []byte) {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				f.Add(d)
			}
		}
	})
	f.Fuzz(func(t *testing.T, d []byte) {
		requireSameEventReport(t, d)
	})
}

// requireSameEventsReport checks that Meter.data reports on a sequence of
// events what the reference reports, after each event: the later events
// may be read by the template of an earlier one.
func requireSameEventsReport(t *testing.T, events ...[]byte) {
	got := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
	want := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
	for i, d := range events {
		now := time.Unix(1700000000+int64(i), 0)
		got.now, want.now = now, now
		got.data(d)
		want.dataByNestedScans(d)
		require.Equal(t, want.report, got.report, "after event %d %q", i, d)
	}
}

// meterTemplateCases are sequences of events in which later events have
// the bytes of an earlier one around another content string, valid or not,
// or differ from it elsewhere.
var meterTemplateCases = map[string][]string{
	"tokens": {
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":" there"}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":""}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"\"q\" \u00e9 \\"}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"a"b"}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}`,
		"{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ctl\x01\"}}]}",
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"bad \x"}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"cut`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}}`,
		`{"id":"c","model":"other","choices":[{"index":0,"delta":{"content":"b"}}]}`,
		`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"c"}}]}`,
	},
	"usage between": {
		` {"model":"m","usage":null,"choices":[{"delta":{"content":"a"}}]} `,
		`{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":1},"choices":[]}`,
		` {"model":"m","usage":null,"choices":[{"delta":{"content":"b"}}]} `,
		`{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":2},"choices":[{"delta":{"content":"c"}}]}`,
		`{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":2},"choices":[{"delta":{"content":"d"}}]}`,
		`{"model":"m","usage":{"prompt_tokens":9},"choices":[]}`,
		`{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":2},"choices":[{"delta":{"content":"f"}}]}`,
		` {"model":"m","usage":null,"choices":[{"delta":{"content":"e"}}]} `,
	},
	"model not a string, then one": {
		`{"model":1,"choices":[{"text":"a"}]}`,
		`{"model":"late","choices":[{"text":"b"}]}`,
		`{"model":1,"choices":[{"text":"c"}]}`,
	},
	"empty model first": {
		`{"model":"","choices":[{"text":"a"}]}`,
		`{"model":"","choices":[{"text":"b"}]}`,
		`{"model":"x","choices":[{"text":"c"}]}`,
		`{"model":"","choices":[{"text":"d"}]}`,
	},
	"responses deltas": {
		`{"type":"response.output_text.delta","delta":"Hi"}`,
		`{"type":"response.output_text.delta","delta":""}`,
		`{"type":"response.output_text.delta","delta":"there"}`,
		`{"type":"error","delta":"x"}`,
		`{"type":"error","delta":"y"}`,
	},
	"not templates": {
		`{"choices":[{"delta":{"content":"a","reasoning":"b"}}]}`,
		`{"choices":[{"delta":{"content":"c","reasoning":"b"}}]}`,
		`{"choices":[{"delta":{"content":"a","tool_calls":[{"function":{"name":"f"}}]}}]}`,
		`{"choices":[{"delta":{"content":"b","tool_calls":[{"function":{"name":"f"}}]}}]}`,
		`{"choices":[{"delta":{"content":"a"}}],"x":tru}`,
		`{"choices":[{"delta":{"content":"b"}}],"x":tru}`,
		`{"choices":[{"delta":{"content":["a"]}}]}`,
		`{"choices":[{"delta":{"content":["b"]}}]}`,
	},
	"trailing bytes and escaped keys": {
		`{"ch\u006fices":[{"d\u0065lta":{"c\u006fntent":"a"}}]}x`,
		`{"ch\u006fices":[{"d\u0065lta":{"c\u006fntent":"bb"}}]}x`,
		`{"ch\u006fices":[{"d\u0065lta":{"c\u006fntent":"bb"}}]}y`,
		` [DONE] `,
	},
}

func TestMeterTemplateMatchesNestedScans(t *testing.T) {
	for name, events := range meterTemplateCases {
		t.Run(name, func(t *testing.T) {
			var ds [][]byte
			for _, e := range events {
				ds = append(ds, []byte(e))
			}
			requireSameEventsReport(t, ds...)
		})
	}
}

// FuzzMeterEvents checks sequences of events against the reference: an
// event, the same with the value of its first content string (by the key
// chosen) replaced by x, that event again, and the first again.
func FuzzMeterEvents(f *testing.F) {
	for _, events := range meterTemplateCases {
		for _, e := range events {
			f.Add([]byte(e), []byte("new text"), uint8(0))
		}
	}
	f.Add([]byte(`{"choices":[{"text":"a"}]}`), []byte(`b\"`), uint8(1))
	f.Add([]byte(`{"type":"response.output_text.delta","delta":"a","sequence_number":1}`), []byte(`"`), uint8(2))
	f.Fuzz(func(t *testing.T, d, x []byte, key uint8) {
		keys := []string{`"content":"`, `"text":"`, `"delta":"`, `"reasoning_content":"`}
		k := []byte(keys[int(key)%len(keys)])
		other := d
		if i := bytes.Index(d, k); i >= 0 {
			start := i + len(k)
			if end := scanString(d, start); end > 0 {
				other = append(append(append([]byte(nil), d[:start]...), x...), d[end-1:]...)
			}
		}
		requireSameEventsReport(t, d, other, other, d)
	})
}
