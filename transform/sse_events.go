package transform

import (
	"bytes"
	"strconv"
)

// sseEvents splits a provider's Server-Sent Events body, arriving in
// chunks split anywhere, into the data of each event as its line
// completes. Between chunks it holds only the unfinished line (and the
// data of an event written on several data lines). Lines end in LF, CRLF
// or CR; event:, id:, retry: and comments are ignored, as every provider
// this package reads puts what matters in the data.
//
// It is not sse.go's parser: that one drops an over-long line and goes on
// (right for accounting), while a translation that lost an event must end
// the stream with an error.
type sseEvents struct {
	who    string // "the Anthropic backend", for errors
	max    int    // bound of one line and of one event's data
	line   []byte // unfinished line, a copy
	event  []byte // data lines of the event in progress
	multi  bool   // event holds data waiting for its blank line
	skipLF bool   // the last chunk ended in '\r'
}

// sseHandler is the translation an sseEvents feeds.
type sseHandler interface {
	// onEvent appends the translation of one event's data.
	onEvent(dst, data []byte) []byte
	// finished reports that the stream ended (or failed): the rest of the
	// body is ignored.
	finished() bool
	// fail appends an error event and marks the stream finished.
	fail(dst []byte, msg string) []byte
}

// write appends the translation of chunk b to dst.
func (r *sseEvents) write(dst, b []byte, h sseHandler) []byte {
	if r.skipLF && len(b) > 0 {
		r.skipLF = false
		if b[0] == '\n' {
			b = b[1:]
		}
	}
	for len(b) > 0 && !h.finished() {
		i := lineEnd(b)
		if i < 0 {
			if len(r.line)+len(b) > r.max {
				return r.tooLong(dst, h)
			}
			r.line = append(r.line, b...)
			return dst
		}
		line := b[:i]
		if len(r.line) > 0 {
			if len(r.line)+len(line) > r.max {
				return r.tooLong(dst, h)
			}
			r.line = append(r.line, line...)
			line = r.line
		}
		dst = r.lineDone(dst, line, h)
		r.line = r.line[:0]
		if b[i] == '\r' {
			switch {
			case i+1 == len(b):
				r.skipLF = true
			case b[i+1] == '\n':
				i++
			}
		}
		b = b[i+1:]
	}
	return dst
}

// flush reads what the end of the body completes: an unfinished last line
// and an event without its blank line.
func (r *sseEvents) flush(dst []byte, h sseHandler) []byte {
	if !h.finished() && len(r.line) > 0 {
		dst = r.lineDone(dst, r.line, h)
	}
	if !h.finished() {
		dst = r.lineDone(dst, nil, h)
	}
	r.release()
	return dst
}

// release lets go of what is held: the buffers are kept, emptied, unless
// they grew past maxKeptBuffer.
func (r *sseEvents) release() { r.line, r.event = kept(r.line), kept(r.event) }

// recycled returns a new sseEvents with r's buffers, emptied (and
// bounded), for the next stream.
func (r *sseEvents) recycled() sseEvents { return sseEvents{line: kept(r.line), event: kept(r.event)} }

// start readies r for a new stream from who, keeping its emptied buffers.
func (r *sseEvents) start(who string, max int) {
	*r = r.recycled()
	r.who, r.max = who, max
}

func (r *sseEvents) tooLong(dst []byte, h sseHandler) []byte {
	r.release()
	return h.fail(dst, r.who+" sent an event line longer than "+strconv.Itoa(r.max)+" bytes")
}

func (r *sseEvents) lineDone(dst, line []byte, h sseHandler) []byte {
	if len(line) == 0 { // end of event
		if r.multi {
			dst = h.onEvent(dst, r.event)
			r.event, r.multi = r.event[:0], false
		}
		return dst
	}
	if line[0] == ':' {
		return dst
	}
	name, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	if string(name) != "data" {
		return dst
	}
	switch {
	case r.multi:
		if len(r.event)+1+len(value) > r.max {
			r.release()
			return h.fail(dst, r.who+" sent an event larger than "+strconv.Itoa(r.max)+" bytes")
		}
		r.event = append(append(r.event, '\n'), value...)
	case wholeObject(value):
		dst = h.onEvent(dst, value)
	default:
		r.event, r.multi = append(r.event[:0], value...), true
	}
	return dst
}

// wholeObject reports whether a data line holds a whole JSON object (so it
// is the event's only data line); the handler checks that it is valid.
func wholeObject(v []byte) bool {
	v = bytes.TrimSpace(v)
	return len(v) >= 2 && v[0] == '{' && v[len(v)-1] == '}'
}
