package transform

import "bytes"

// maxSSELine bounds the memory one unfinished SSE line may take between
// chunks. A longer line is dropped. A Responses API response.completed event
// repeats the whole response, so this is generous.
const maxSSELine = 16 << 20

// sseParser splits a text/event-stream fed in chunks that may split it
// anywhere (mid-line, mid-"data:", mid-UTF-8) into the data of its events.
// Between chunks it keeps only a copy of the unfinished line. An event's data
// line is handed over as soon as the line is complete, without waiting for
// the blank line that ends the event, unless the data of one event spans
// several lines (then they are joined with '\n' and handed over at the end of
// the event, as the SSE specification says).
type sseParser struct {
	line     []byte // unfinished line from earlier chunks (a copy)
	event    []byte // data of an event written on several lines
	multi    bool   // event holds data waiting for the end of its event
	skipLF   bool   // the last chunk ended in '\r': a leading '\n' ends the same line
	overflow bool   // the unfinished line is too long and is being dropped
	dropped  int    // lines dropped for length
}

// dataHandler receives the data of events. data is valid only during the
// call.
type dataHandler interface {
	data(data []byte)
}

func (p *sseParser) write(b []byte, h dataHandler) {
	if p.skipLF && len(b) > 0 {
		p.skipLF = false
		if b[0] == '\n' {
			b = b[1:]
		}
	}
	cr := -1 // the first '\r' at or after off (len(b): none); searched once for all lines before it
	for off := 0; off < len(b); {
		if cr < off {
			if cr = bytes.IndexByte(b[off:], '\r'); cr < 0 {
				cr = len(b)
			} else {
				cr += off
			}
		}
		i := cr // the end of the line: the first '\r' or '\n'
		if n := bytes.IndexByte(b[off:cr], '\n'); n >= 0 {
			i = off + n
		}
		if i == len(b) {
			p.carry(b[off:])
			return
		}
		line := b[off:i]
		if len(p.line) > 0 || p.overflow {
			p.carry(line)
			line = p.line
		}
		if !p.overflow {
			p.lineDone(line, h)
		}
		p.line, p.overflow = p.line[:0], false
		if b[i] == '\r' {
			switch {
			case i+1 == len(b):
				p.skipLF = true
			case b[i+1] == '\n':
				i++
			}
		}
		off = i + 1
	}
}

// close ends the stream: a last line without its line ending still counts.
func (p *sseParser) close(h dataHandler) {
	if len(p.line) > 0 && !p.overflow {
		p.lineDone(p.line, h)
	}
	p.lineDone(nil, h) // ends the event in progress
	p.line, p.event = nil, nil
}

func (p *sseParser) carry(b []byte) {
	if p.overflow {
		return
	}
	if len(p.line)+len(b) > maxSSELine {
		p.overflow, p.line = true, nil
		p.dropped++
		return
	}
	p.line = append(p.line, b...)
}

// lineEnd returns the index of the first '\r' or '\n' in b, or -1.
func lineEnd(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if r := bytes.IndexByte(b[:n], '\r'); r >= 0 {
		return r
	}
	return n
}

func (p *sseParser) lineDone(line []byte, h dataHandler) {
	if len(line) == 0 { // end of event
		if p.multi {
			h.data(p.event)
			p.event, p.multi = p.event[:0], false
		}
		return
	}
	if line[0] == ':' { // comment
		return
	}
	name, value := line, []byte(nil)
	c := 4 // the first ':' of a data line, most lines: no search
	if len(line) < 5 || string(line[:5]) != "data:" {
		c = bytes.IndexByte(line, ':')
	}
	if c >= 0 {
		name, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	if string(name) != "data" { // event, id and retry do not matter here
		return
	}
	switch {
	case p.multi:
		p.event = append(append(p.event, '\n'), value...)
	case wholeData(value):
		h.data(value)
	default:
		p.event, p.multi = append(p.event[:0], value...), true
	}
}

// wholeData reports whether an event's first data line holds all of its
// data: a JSON object, or [DONE].
func wholeData(v []byte) bool {
	v = bytes.TrimSpace(v)
	return len(v) >= 2 && v[0] == '{' && v[len(v)-1] == '}' || string(v) == "[DONE]"
}
