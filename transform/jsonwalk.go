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
	keyLen    int   // of a key cut by a chunk's end; its first bytes are in key
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
	i := 0
	if w.depth > w.keyDepth() { // the chunk starts inside a skipped container
		i = w.skipNested(b, 0)
	}
	for ; i < len(b) && !w.ended; i++ {
		if w.str {
			j := w.stringEnd(b, i)
			if j < 0 {
				if w.isKey {
					w.addKey(b[i:])
				}
				return
			}
			var key []byte // the whole key, nil when longer than any watched one
			if w.isKey {
				if key = b[i:j]; w.keyLen > 0 { // the key began in an earlier chunk
					w.addKey(key)
					key = nil
					if w.keyLen <= len(w.key) {
						key = w.key[:w.keyLen]
					}
				}
			}
			i = j
			w.str = false
			if w.isKey {
				w.endKey(key)
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
				w.keyLen = 0
			} else {
				w.startValue(b, i, sink)
			}
		case '{', '[':
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
			if w.depth > w.keyDepth() {
				i = w.skipNested(b, i+1) - 1
			}
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

// keyDepth is the depth of the deepest object whose keys can name a watched
// field: 2 inside the top-level "response" object, else 1.
func (w *jsonWalker) keyDepth() int {
	if w.response {
		return 2
	}
	return 1
}

// skipNested reads the bytes of containers nested below keyDepth, where no
// key names a watched field and no watched value ends: it only follows
// their strings and brackets, as the walk would, without checking anything
// (the walk never did: it jumped over valid members, and walked invalid
// ones counting brackets just the same). It returns the index of the
// bracket that closes the outermost of them, unread, or len(b) when the
// chunk ends first, with the depth and string state kept for the next
// chunk. The objects bits and wantKey of those depths are left as they
// are: the walk reads them only at keyDepth and above.
//
// The walk used to check each nested container with skipValue before
// jumping over it, and to go byte by byte through those a chunk cuts,
// checking each container within them again, to the chunk's end (issue
// 11).
func (w *jsonWalker) skipNested(b []byte, i int) int {
	d, stop := w.depth, w.keyDepth()+1
	if i == len(b) { // an empty chunk: an escape it would end stays open
		return i
	}
	if w.str {
		j := w.stringEnd(b, i)
		if j < 0 {
			return len(b)
		}
		w.str = false
		i = j + 1
	}
	for {
		for i < len(b) && !nestedStops[b[i]] {
			i++
		}
		if i == len(b) {
			w.depth = d
			return i
		}
		switch b[i] {
		case '"':
			j := w.stringEnd(b, i+1)
			if j < 0 {
				w.depth, w.str = d, true
				return len(b)
			}
			i = j
		case '{', '[':
			d++
		default: // '}', ']'
			if d == stop {
				w.depth = d
				return i
			}
			d--
		}
		i++
	}
}

// nestedStops marks the bytes skipNested stops at.
var nestedStops = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

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

// addKey keeps the first bytes of a key cut by a chunk's end.
func (w *jsonWalker) addKey(p []byte) {
	if w.keyLen < len(w.key) {
		copy(w.key[w.keyLen:], p)
	}
	w.keyLen += len(p)
}

// endKey decides whether the key just read, k as sent, names a watched
// field. A key with an escape names none: no watched name has one.
func (w *jsonWalker) endKey(k []byte) {
	w.pending = fieldNone
	var f field
	switch { // string(k) == "...": no copy
	case w.depth == 1 && string(k) == "model":
		f = fieldModel
	case w.depth == 1 && string(k) == "usage":
		f = fieldUsage
	case w.depth == 1 && string(k) == "response":
		f = fieldResponse
		if w.watch&(fieldResponseModel.bit()|fieldResponseUsage.bit()) != 0 {
			w.pending = f
		}
		return
	case w.depth == 2 && w.response && string(k) == "model":
		f = fieldResponseModel
	case w.depth == 2 && w.response && string(k) == "usage":
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
	if q := closingQuote(b, i); q >= 0 {
		return q
	}
	// The backslashes that end b (after its last quote, if any) carry over.
	w.esc = backslashes(b[i:], len(b)-i)%2 == 1
	return -1
}

// closingQuote returns the index of the first '"' at or after b[i] that no
// backslash escapes, or -1.
func closingQuote(b []byte, i int) int {
	for i < len(b) {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
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
