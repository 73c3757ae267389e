package transform

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// refWalker is the reference for jsonWalker: the walker as it was before
// issue 11, which jumped over a whole member only after checking it with
// skipValue, and walked every byte of the rest. FuzzJSONWalkerMatchesReference
// holds the two to the same reports.
//
// It follows the structure of one JSON document fed in chunks that
// may split it anywhere, and reports the values of a few top-level fields. It
// copies nothing and keeps a few words of state between chunks. It assumes
// valid JSON; on anything else it reports nonsense but never fails.
type refWalker struct {
	watch     uint8  // field bits to report
	depth     int    // open containers
	objects   uint64 // bit d-1 set: the container at depth d (<= 64) is an object
	str       bool   // inside a string
	esc       bool   // inside a string, right after a backslash
	isKey     bool   // the string being read is an object key
	wantKey   bool   // the next string is an object key
	key       [8]byte
	keyLen    int
	keyEsc    bool  // the key has an escape: it names no watched field
	pending   field // the key just read names a watched field; its value comes next
	current   field // the watched value being read
	currentAt int   // depth of the object holding current's key
	response  bool  // the depth-2 container is the top-level "response" object
	ended     bool  // the document is complete
}

func (w *refWalker) walk(b []byte, sink fieldSink) {
	for i := 0; i < len(b) && !w.ended; i++ {
		if w.str {
			j := w.stringEnd(b, i)
			if w.isKey {
				end := j
				if end < 0 {
					end = len(b)
				}
				w.addKey(b[i:end])
			}
			if j < 0 {
				return
			}
			i = j
			w.str = false
			if w.isKey {
				w.endKey()
			} else if w.current != fieldNone && w.depth == w.currentAt {
				sink.fieldEnd(w.current, b, i)
				w.current = fieldNone
			}
			continue
		}
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r', ':':
		case ',':
			w.wantKey = w.inObject()
		case '"':
			w.str = true
			w.isKey = w.wantKey
			w.wantKey = false
			if w.isKey {
				w.keyLen, w.keyEsc = 0, false
			} else {
				w.startValue(b, i, sink)
			}
		case '{', '[':
			if end := w.skipMember(b, i, sink); end > 0 {
				i = end - 1
				continue
			}
			w.startValue(b, i, sink)
			w.depth++
			if w.depth <= 64 {
				if c == '{' {
					w.objects |= 1 << (w.depth - 1)
				} else {
					w.objects &^= 1 << (w.depth - 1)
				}
			}
			w.wantKey = c == '{'
		case '}', ']':
			w.depth--
			w.wantKey = false
			if w.depth < 2 {
				w.response = false
			}
			if w.current != fieldNone && w.depth == w.currentAt {
				sink.fieldEnd(w.current, b, i)
				w.current = fieldNone
			}
			if w.depth <= 0 {
				w.ended = true
			}
		default: // a byte of a number, true, false or null
			w.pending = fieldNone
		}
	}
}

// skipMember jumps over a container that is a member's value inside the
// document (no watched field lies within it, unless it is the "response"
// object, which is walked) when the chunk holds all of it and it is valid
// JSON: skipValue finds its end at memory speed, where the walk goes byte
// by byte through every key and number. It returns the index after the
// container, having reported it as a watched value would be; 0 when it
// must be walked (cut by the chunk's end, invalid: the walk then reports
// what it always did).
func (w *refWalker) skipMember(b []byte, i int, sink fieldSink) int {
	if w.depth < 1 || w.depth >= maxDepth || w.pending == fieldResponse {
		return 0 // the document itself, deeper than skipValue goes, or walked for its fields
	}
	end := skipValue(b, i, w.depth)
	if end < 0 {
		return 0
	}
	f := w.pending
	w.pending, w.wantKey = fieldNone, false
	if f != fieldNone {
		sink.fieldStart(f, b, i)
		sink.fieldEnd(f, b, end-1)
	}
	return end
}

func (w *refWalker) inObject() bool {
	return w.depth > 0 && (w.depth > 64 || w.objects&(1<<(w.depth-1)) != 0)
}

// startValue notes a string or container value starting at b[i].
func (w *refWalker) startValue(b []byte, i int, sink fieldSink) {
	f := w.pending
	w.pending = fieldNone
	switch {
	case f == fieldNone:
	case f == fieldResponse:
		w.response = b[i] == '{'
	default:
		w.current, w.currentAt = f, w.depth
		sink.fieldStart(f, b, i)
	}
}

func (w *refWalker) addKey(p []byte) {
	if bytes.IndexByte(p, '\\') >= 0 {
		w.keyEsc = true
	}
	if w.keyLen < len(w.key) {
		copy(w.key[w.keyLen:], p)
	}
	w.keyLen += len(p)
}

// endKey decides whether the key just read names a watched field.
func (w *refWalker) endKey() {
	w.pending = fieldNone
	if w.keyEsc || w.keyLen > len(w.key) {
		return
	}
	var f field
	switch k := string(w.key[:w.keyLen]); {
	case w.depth == 1 && k == "model":
		f = fieldModel
	case w.depth == 1 && k == "usage":
		f = fieldUsage
	case w.depth == 1 && k == "response":
		f = fieldResponse
		if w.watch&(fieldResponseModel.bit()|fieldResponseUsage.bit()) != 0 {
			w.pending = f
		}
		return
	case w.depth == 2 && w.response && k == "model":
		f = fieldResponseModel
	case w.depth == 2 && w.response && k == "usage":
		f = fieldResponseUsage
	}
	if f != fieldNone && w.watch&f.bit() != 0 {
		w.pending = f
	}
}

// stringEnd returns the index in b of the quote that closes the string being
// read from b[i], or -1 when b ends first.
func (w *refWalker) stringEnd(b []byte, i int) int {
	if w.esc { // the previous chunk ended in an escaping backslash
		w.esc = false
		i++
	}
	for i < len(b) {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			w.esc = refBackslashes(b[i:], len(b)-i)%2 == 1
			return -1
		}
		q += i
		if refBackslashes(b[i:], q-i)%2 == 0 {
			return q
		}
		i = q + 1
	}
	return -1
}

// refBackslashes counts the backslashes that end b[:n].
func refBackslashes(b []byte, n int) int {
	k := 0
	for n > 0 && b[n-1] == '\\' {
		n--
		k++
	}
	return k
}

// events records what a walk reports, at offsets in the whole document.
type events struct {
	base int // the offset of the chunk being walked
	out  []string
}

func (e *events) fieldStart(f field, _ []byte, i int) {
	e.out = append(e.out, fmt.Sprintf("start %d at %d", f, e.base+i))
}

func (e *events) fieldEnd(f field, _ []byte, i int) {
	e.out = append(e.out, fmt.Sprintf("end %d at %d", f, e.base+i))
}

// walkers are the walks of the meter (JSON bodies) and of the model
// restorer (also SSE events, with the Responses API's "response").
var walkers = map[string]uint8{
	"meter":    fieldModel.bit() | fieldUsage.bit(),
	"restorer": fieldModel.bit() | fieldResponseModel.bit(),
	"all":      fieldModel.bit() | fieldUsage.bit() | fieldResponseModel.bit() | fieldResponseUsage.bit(),
}

// requireWalkMatchesReference checks that jsonWalker reports on chunks
// what refWalker reports, and ends with it.
func requireWalkMatchesReference(t *testing.T, watch uint8, chunks ...[]byte) {
	w, ref := jsonWalker{watch: watch}, refWalker{watch: watch}
	var got, want events
	for _, c := range chunks {
		w.walk(c, &got)
		ref.walk(c, &want)
		got.base += len(c)
		want.base += len(c)
		require.Equal(t, want.out, got.out)
		require.Equal(t, ref.ended, w.ended)
	}
}

// refMeter is a Meter whose JSON body is walked by refWalker.
type refMeter struct {
	*Meter
	walker refWalker
}

// feed is Meter.feed with refWalker.
func (r *refMeter) feed(b []byte) bool {
	m := r.Meter
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
	}
	if m.active != nil {
		m.active.from = 0
	}
	r.walker.walk(b, m)
	if m.active != nil {
		m.active.add(b[m.active.from:])
	}
	return !r.walker.ended
}

// meterByReference is meterChunks for a JSON body walked by refWalker.
func meterByReference(encoding string, chunks ...[]byte) Report {
	r := &refMeter{Meter: NewMeter(EndpointChatCompletions, 200, "application/json", encoding)}
	r.walker.watch = r.Meter.walker.watch
	if r.gz != nil {
		r.gz.stop()
		r.gz = newGunzipper(r.feed)
	}
	for i, c := range chunks {
		if r.kind == bodyIgnored {
			break
		}
		r.now = at(i)
		if r.gz != nil {
			r.gz.write(c)
		} else {
			r.feed(c)
		}
	}
	return r.Finish(at(len(chunks)))
}

// walkCases are JSON documents, valid or not, with what the walks watch in
// every place and type, and what skipValue refused: duplicate, escaped and
// long keys, scalar and huge values, cuts, junk, deep nesting.
var walkCases = map[string]string{
	"abi bench answer":             abiBenchResponse,
	"empty object":                 ` { } `,
	"usage first":                  `{"usage":{"prompt_tokens":1,"completion_tokens":2},"choices":[{"message":{"content":"x"}}],"model":"m"}`,
	"usage last":                   `{"model":"m","choices":[{"message":{"content":"x","usage":{"prompt_tokens":9}}}],"usage":{"input_tokens":3}}`,
	"model twice, then a scalar":   `{"model":"a","model":"b","model":1}`,
	"model as an object":           `{"model":"a","model":{"x":"y"}}`,
	"model as an array":            `{"model":["a"]}`,
	"model escaped":                `{"model":"a\"b\\c\u00e9\\"}`,
	"usage twice":                  `{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}`,
	"usage then null":              `{"usage":{"prompt_tokens":1},"usage":null}`,
	"usage as a string":            `{"usage":"{\"prompt_tokens\":1}"}`,
	"usage as an array":            `{"usage":[{"prompt_tokens":1}]}`,
	"escaped keys":                 `{"mod\u0065l":"x","us\u0061ge":{"prompt_tokens":1},"model":"y"}`,
	"long keys":                    `{"modelmodel":"x","usagesusage":{"prompt_tokens":1}}`,
	"responses api":                `{"type":"response.completed","response":{"output":[{"model":"no","usage":{}}],"model":"r","usage":{"input_tokens":1}},"model":"top"}`,
	"response not an object":       `{"response":["model","usage"],"model":"m"}`,
	"response twice":               `{"response":{"model":"a"},"response":{"usage":{"t":1},"x":{"model":"no"}}}`,
	"brackets in strings":          `{"x":[{"a":"]}\"]}\\","b":"{["}],"usage":{"s":"}}"}}`,
	"trailing junk":                `{"model":"a","usage":{"prompt_tokens":1}} junk {"model":"b"}`,
	"second document":              `{"model":"a"}{"model":"b","usage":{"prompt_tokens":1}}`,
	"cut in usage":                 `{"model":"a","usage":{"prompt_tokens":1,"compl`,
	"cut in a nested string":       `{"x":[{"a":"b\`,
	"cut after a comma":            `{"model":"a",`,
	"invalid value after usage":    `{"model":"a","usage":{"prompt_tokens":1},"x":tru,"model":"b"}`,
	"invalid usage":                `{"model":"a","usage":{"prompt_tokens":1,},"model":"b"}`,
	"missing colon and comma":      `{"model" "a" "usage" {"prompt_tokens":1}}`,
	"scalar between key and value": `{"model" 1 "a","usage":{}}`,
	"control bytes":                "{\"mo\x01del\":\"x\",\"model\":\"x\x01y\",\"usage\":{\"a\":\"\x00\"}}",
	"mismatched brackets":          `{"model":"a","x":[1},"usage":{"prompt_tokens":1]}`,
	"more closing than opening":    `{"x":[1]]],"model":"no"}`,
	"array document":               `[{"model":"a"},"usage",{"usage":{}}]`,
	"spaces only":                  " \n\t ",
	"deeper than skipValue goes":   `{"model":"a","x":` + strings.Repeat("[", 1100) + strings.Repeat("]", 1100) + `,"usage":{"prompt_tokens":1}}`,
	"deeper than the walker's map": `{"x":` + strings.Repeat(`{"a":[`, 40) + `"s","t"` + strings.Repeat("]}", 40) + `,"usage":{"total_tokens":5}}`,
	"huge usage":                   `{"usage":{"prompt_tokens":1,"x":"` + strings.Repeat("u", maxCapture) + `"},"model":"m"}`,
	"huge model":                   `{"model":"` + strings.Repeat("m", maxCapture) + `"}`,
	"huge usage, then a small one": `{"usage":{"x":"` + strings.Repeat("u", maxCapture) + `"},"usage":{"prompt_tokens":2}}`,
	"long escaped string":          `{"x":["` + strings.Repeat(`ab\\\"c`, 40) + `"],"model":"` + strings.Repeat(`\"`, 40) + `"}`,
}

// requireMeterMatchesReference checks that the meter reports on body,
// whole and split at i and j, what it reports with refWalker.
func requireMeterMatchesReference(t *testing.T, body []byte, i, j int) {
	require.Equal(t, meterByReference("", body), meterChunks(EndpointChatCompletions, "application/json", "", body), "whole")
	chunks := [][]byte{body[:i], body[i:j], body[j:]}
	require.Equal(t, meterByReference("", chunks...), meterChunks(EndpointChatCompletions, "application/json", "", chunks...), "split at %d and %d", i, j)
	for _, watch := range walkers {
		requireWalkMatchesReference(t, watch, body)
		requireWalkMatchesReference(t, watch, chunks...)
	}
}

func TestJSONWalkerMatchesReference(t *testing.T) {
	cases := maps.Clone(walkCases)
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	require.NoError(t, err)
	for _, name := range files {
		cases[name] = string(readFixture(t, strings.TrimPrefix(name, "testdata/")))
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			b := []byte(body)
			step := 1 // every split of a short body, in two and in three around the middle
			if len(b) > 1<<10 {
				step = len(b) / 64
			}
			for i := 0; i <= len(b); i += step {
				requireMeterMatchesReference(t, b, i, i)
				requireMeterMatchesReference(t, b, i, max(i, len(b)/2))
			}
			require.Equal(t, meterByReference("", bytesOf(b)...), meterChunks(EndpointChatCompletions, "application/json", "", bytesOf(b)...), "a byte at a time")

			var gz bytes.Buffer
			w := gzip.NewWriter(&gz)
			_, err := w.Write(b)
			require.NoError(t, err)
			require.NoError(t, w.Close())
			z := gz.Bytes()
			require.Equal(t, meterByReference("gzip", z), meterChunks(EndpointChatCompletions, "application/json", "gzip", z), "gzip")
			require.Equal(t, meterByReference("gzip", z[:len(z)/2], z[len(z)/2:]),
				meterChunks(EndpointChatCompletions, "application/json", "gzip", z[:len(z)/2], z[len(z)/2:]), "gzip split")
		})
	}
}

// FuzzJSONWalkerMatchesReference checks jsonWalker against refWalker: the
// same values reported, at the same places, for the meter's, the
// restorer's and every watch, and the same meter report, for any bytes,
// valid or not, whole and split anywhere in three.
func FuzzJSONWalkerMatchesReference(f *testing.F) {
	for _, body := range walkCases {
		if len(body) < 4<<10 {
			f.Add([]byte(body), uint16(len(body)/3), uint16(len(body)/2))
		}
	}
	addFixtures(f, "*/*.json", func(b []byte) { f.Add(b, uint16(len(b)/3), uint16(len(b)/2)) })
	f.Fuzz(func(t *testing.T, body []byte, a, b uint16) {
		i, j := min(int(a), len(body)), min(int(b), len(body))
		requireMeterMatchesReference(t, body, min(i, j), max(i, j))
	})
}
