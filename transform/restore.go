package transform

import (
	"github.com/tidwall/gjson"
)

// ModelRestorer gives a response the name of the model the client asked
// for, when the request's model was rewritten. It replaces the string value
// of the top-level "model" field (and of "response"."model", where the
// Responses API's stream events keep it) of a JSON body, or of every data
// line of an SSE stream.
//
// It never holds bytes back: each chunk's output is ready when Write
// returns. Only the value is replaced: on the opening quote of the server's
// model name the client's name is written whole, and the server's name is
// dropped as it arrives, even when it is split across chunks. Everything else
// passes byte for byte.
//
// The body length changes, so the module removes content-length from the
// response headers. Compressed bodies cannot be edited: send requests whose
// model is rewritten without accept-encoding, or leave the name as is.
type ModelRestorer struct {
	quoted   []byte // the client's model as a JSON string
	sse      bool
	walker   jsonWalker
	prefix   int  // SSE: bytes of "data:" matched at the start of the line; -1: not a data line
	skipping bool // dropping the server's model name
	// Per call to Write.
	out     []byte
	chunk   []byte
	offset  int // of the walked segment in chunk
	last    int // chunk bytes before last are in out, or dropped
	changed bool
}

// NewModelRestorer returns a restorer that names model in a response with
// the given content-type (text/event-stream, or else JSON).
func NewModelRestorer(model, contentType string) *ModelRestorer {
	mt := mediaType(contentType)
	r := &ModelRestorer{quoted: gjson.AppendJSONString(nil, model), sse: mt == "text/event-stream"}
	r.walker.watch = fieldModel.bit() | fieldResponseModel.bit()
	return r
}

// Write appends to dst the bytes to forward for chunk (chunk itself when
// nothing in it changes) and reports whether they differ from chunk. A caller
// that forwards several chunks at once appends them all to one dst, and needs
// to replace the body only when one changed.
func (r *ModelRestorer) Write(dst, chunk []byte) (out []byte, changed bool) {
	r.out, r.chunk, r.last, r.changed = dst, chunk, 0, r.skipping
	if r.sse {
		r.walkLines()
	} else {
		r.offset = 0
		r.walker.walk(chunk, r)
	}
	out, changed = r.out, r.changed
	if !r.skipping {
		out = append(out, chunk[r.last:]...)
	}
	r.out, r.chunk = nil, nil
	return out, changed
}

// walkLines feeds the JSON of each data line to the walker.
func (r *ModelRestorer) walkLines() {
	b := r.chunk
	pos := 0
	for pos < len(b) {
		end := lineEnd(b[pos:])
		if end < 0 {
			end = len(b)
		} else {
			end += pos
		}
		seg := b[pos:end]
		for len(seg) > 0 && r.prefix >= 0 && r.prefix < len("data:") {
			if seg[0] != "data:"[r.prefix] {
				r.prefix = -1
				break
			}
			r.prefix++
			seg = seg[1:]
		}
		if r.prefix == len("data:") {
			r.offset = end - len(seg)
			r.walker.walk(seg, r)
		}
		if end == len(b) {
			return
		}
		if r.skipping { // a broken line: stop dropping at its end
			r.skipping, r.last = false, end
		}
		r.prefix = 0 // a new line starts after the line ending
		r.walker.reset()
		pos = end + 1
	}
}

func (r *ModelRestorer) fieldStart(_ field, seg []byte, i int) {
	if seg[i] != '"' {
		return // not a string: left alone
	}
	at := r.offset + i
	r.out = append(r.out, r.chunk[r.last:at]...)
	r.out = append(r.out, r.quoted...)
	r.skipping, r.changed = true, true
}

func (r *ModelRestorer) fieldEnd(_ field, seg []byte, i int) {
	if r.skipping {
		r.last = r.offset + i + 1
		r.skipping = false
	}
}
