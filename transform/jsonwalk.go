package transform

import "bytes"

// field is a JSON field the walker watches, by its path from the top-level
// object of a document.
type field uint8

const (
	fieldNone          field = iota
	fieldModel               // "model"
	fieldUsage               // "usage"
	fieldResponse            // "response": the Responses API's stream events nest the response in it
	fieldResponseModel       // "response"."model"
	fieldResponseUsage       // "response"."usage"
)

func (f field) bit() uint8 { return 1 << f }

// fieldSink learns where watched values are in the chunk being walked.
type fieldSink interface {
	// fieldStart: the value of f begins at chunk[i] (a '"', '{' or '['; scalar
	// values are not reported).
	fieldStart(f field, chunk []byte, i int)
	// fieldEnd: the value of f ends at chunk[i], inclusive.
	fieldEnd(f field, chunk []byte, i int)
}

// jsonWalker follows the structure of one JSON document fed in chunks that
// may split it anywhere, and reports the values of a few top-level fields. It
// copies nothing and keeps a few words of state between chunks. It assumes
// valid JSON; on anything else it reports nonsense but never fails.
type jsonWalker struct {
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

func (w *jsonWalker) reset() {
	*w = jsonWalker{watch: w.watch}
}

func (w *jsonWalker) walk(b []byte, sink fieldSink) {
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
func (w *jsonWalker) skipMember(b []byte, i int, sink fieldSink) int {
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

func (w *jsonWalker) inObject() bool {
	return w.depth > 0 && (w.depth > 64 || w.objects&(1<<(w.depth-1)) != 0)
}

// startValue notes a string or container value starting at b[i].
func (w *jsonWalker) startValue(b []byte, i int, sink fieldSink) {
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

func (w *jsonWalker) addKey(p []byte) {
	if bytes.IndexByte(p, '\\') >= 0 {
		w.keyEsc = true
	}
	if w.keyLen < len(w.key) {
		copy(w.key[w.keyLen:], p)
	}
	w.keyLen += len(p)
}

// endKey decides whether the key just read names a watched field.
func (w *jsonWalker) endKey() {
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
func (w *jsonWalker) stringEnd(b []byte, i int) int {
	if w.esc { // the previous chunk ended in an escaping backslash
		w.esc = false
		i++
	}
	for i < len(b) {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			w.esc = backslashes(b[i:], len(b)-i)%2 == 1
			return -1
		}
		q += i
		if backslashes(b[i:], q-i)%2 == 0 {
			return q
		}
		i = q + 1
	}
	return -1
}

// backslashes counts the backslashes that end b[:n].
func backslashes(b []byte, n int) int {
	k := 0
	for n > 0 && b[n-1] == '\\' {
		n--
		k++
	}
	return k
}
