package transform

import "bytes"

// UsageChunkStripper removes, from the stream a client receives, the usage
// chunk ("choices": [] with a "usage" object) that Decide asked the server
// for when the client did not (Decision.UsageInjected): a client that did
// not ask for it may read choices[0] of every chunk. The meter still reads
// the original bytes.
//
// It works line by line and holds back only the unfinished last line of a
// chunk (at most maxHeldLine bytes; a longer line is not a usage chunk and
// passes as it comes), never the stream. The dropped chunk's data line goes
// with the blank line that ends its event. A usage chunk written on several
// data: lines is left alone.
//
// A stripper is used by one stream at a time.
type UsageChunkStripper struct {
	held      []byte // the unfinished line (a copy)
	passing   bool   // the current line is too long to hold: it passes as it comes
	afterCR   bool   // the last line ended in '\r' at a chunk's end: a leading '\n' belongs to it
	droppedCR bool   // ... and that line was dropped
	dropBlank bool   // a usage chunk was just dropped: so is the blank line after it
	dropped   int
}

// maxHeldLine bounds the unfinished line held back; usage chunks are a few
// hundred bytes.
const maxHeldLine = 16 << 10

// NewUsageChunkStripper returns a stripper for a text/event-stream body.
func NewUsageChunkStripper() *UsageChunkStripper { return &UsageChunkStripper{} }

// Dropped counts the usage chunks removed so far.
func (s *UsageChunkStripper) Dropped() int { return s.dropped }

// Write appends to dst the bytes to forward for chunk and reports whether
// they differ from chunk (bytes held back, released or dropped).
func (s *UsageChunkStripper) Write(dst, chunk []byte) (out []byte, changed bool) {
	changed = len(s.held) > 0
	if s.afterCR && len(chunk) > 0 {
		s.afterCR = false
		if chunk[0] == '\n' {
			if s.droppedCR {
				changed = true
			} else {
				dst = append(dst, '\n')
			}
			chunk = chunk[1:]
		}
	}
	tried := false
	for len(chunk) > 0 {
		// Once the held line is complete, the rest usually has no usage
		// object: it goes on whole but its unfinished last line.
		if !tried && len(s.held) == 0 && !s.passing && !s.dropBlank {
			tried = true
			if !usageObjectFollows(chunk) {
				out, ch := s.writeClean(dst, chunk)
				return out, changed || ch
			}
		}
		i := lineEnd(chunk)
		if s.passing {
			if i < 0 {
				return append(dst, chunk...), changed
			}
			s.passing, s.dropBlank = false, false
			dst = append(dst, chunk[:i]...)
			dst, chunk = s.endLine(dst, chunk, i, false)
			continue
		}
		if i < 0 {
			if len(s.held)+len(chunk) > maxHeldLine {
				dst = append(append(dst, s.held...), chunk...)
				s.held, s.passing = s.held[:0], true
				return dst, true
			}
			s.held = append(s.held, chunk...)
			return dst, true
		}
		line := chunk[:i]
		if len(s.held) > 0 {
			s.held = append(s.held, line...)
			line = s.held
		}
		drop := false
		switch {
		case len(line) == 0:
			drop, s.dropBlank = s.dropBlank, false
		case isUsageChunkLine(line):
			drop, s.dropBlank = true, true
			s.dropped++
		default:
			s.dropBlank = false
		}
		if !drop {
			dst = append(dst, line...)
		}
		changed = changed || drop
		s.held = s.held[:0]
		dst, chunk = s.endLine(dst, chunk, i, drop)
	}
	return dst, changed
}

// writeClean writes a chunk that starts a line and holds no usage object,
// so none of its whole lines is a usage chunk: they go on at once, and only
// the unfinished last line is held.
func (s *UsageChunkStripper) writeClean(dst, chunk []byte) ([]byte, bool) {
	end := bytes.LastIndexByte(chunk, '\n') + 1
	end += bytes.LastIndexByte(chunk[end:], '\r') + 1 // CR line endings: only past the last LF
	switch {
	case len(chunk) == 0:
		return dst, false
	case end == len(chunk):
		s.afterCR, s.droppedCR = chunk[end-1] == '\r', false
		return append(dst, chunk...), false
	case len(chunk)-end > maxHeldLine:
		s.passing = true
		return append(dst, chunk...), false
	}
	s.held = append(s.held, chunk[end:]...)
	return append(dst, chunk[:end]...), true
}

// endLine forwards (or drops) the line ending at chunk[i] and returns the
// rest of the chunk.
func (s *UsageChunkStripper) endLine(dst, chunk []byte, i int, drop bool) ([]byte, []byte) {
	n := 1
	switch {
	case chunk[i] == '\r' && i+1 == len(chunk):
		s.afterCR, s.droppedCR = true, drop
	case chunk[i] == '\r' && chunk[i+1] == '\n':
		n = 2
	}
	if !drop {
		dst = append(dst, chunk[i:i+n]...)
	}
	return dst, chunk[i+n:]
}

// Flush ends the stream: the unfinished last line is forwarded, unless it
// is the usage chunk.
func (s *UsageChunkStripper) Flush(dst []byte) (out []byte, changed bool) {
	if len(s.held) == 0 {
		return dst, false
	}
	if isUsageChunkLine(s.held) {
		s.dropped++
	} else {
		dst = append(dst, s.held...)
	}
	s.held = s.held[:0]
	return dst, true
}

var usageKey = []byte(`"usage"`)

// usageObjectFollows reports whether some "usage" in d is followed by a
// colon and an object: most chunks have none, or "usage":null, and are
// passed over without parsing.
func usageObjectFollows(d []byte) bool {
	for {
		i := bytes.Index(d, usageKey)
		if i < 0 {
			return false
		}
		d = d[i+len(usageKey):]
		j := skipSpace(d, 0)
		if j < len(d) && d[j] == ':' {
			if j = skipSpace(d, j+1); j < len(d) && d[j] == '{' {
				return true
			}
		}
	}
}

// isUsageChunkLine reports whether an SSE line is a data line holding a
// usage chunk: a JSON object whose "usage" is an object and whose "choices"
// is empty or absent.
func isUsageChunkLine(line []byte) bool {
	d, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok || !usageObjectFollows(d) { // the cheap test first
		return false
	}
	usage, choices := false, true
	valid := scanTopLevel(d, func(k, v span) bool {
		if !k.ok() {
			return false
		}
		raw := d[v.start:v.end]
		switch keyName(d, k) {
		case "usage":
			usage = raw[0] == '{'
		case "choices":
			choices = raw[0] == '[' && emptyContainer(unsafeString(raw))
		}
		return true
	})
	return valid && usage && choices && d[skipSpace(d, 0)] == '{'
}
