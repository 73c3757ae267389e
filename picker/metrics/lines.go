package metrics

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// selectLines appends to dst the lines of an exposition that belong to the
// wanted families, each ending in '\n'. A model server exposes hundreds of
// histogram lines the scheduler never reads; dropping them before the
// Prometheus parser sees them makes a scrape an order of magnitude cheaper.
// HELP lines are dropped too (their text is long and unused); TYPE lines are
// kept, so a gauge is still told from a histogram. Lines in the quoted-name
// form ({"name",...}) are always kept: the parser knows how to read them and
// they are rare.
func selectLines(dst, body []byte, wanted []string) []byte {
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		if keepLine(line, wanted) {
			dst = append(dst, line...)
			dst = append(dst, '\n')
		}
	}
	return dst
}

func keepLine(line []byte, wanted []string) bool {
	s := trimBlank(line)
	if len(s) == 0 {
		return false
	}
	switch s[0] {
	case '{':
		return true
	case '#':
		s = trimBlank(s[1:])
		if !bytes.HasPrefix(s, []byte("TYPE")) {
			return false // HELP or a plain comment: text the parser need not read
		}
		s = s[4:]
		if len(s) == 0 || (s[0] != ' ' && s[0] != '\t') {
			return false
		}
		s = trimBlank(s)
		if len(s) > 0 && s[0] == '"' {
			return true
		}
		return isWantedName(s, wanted)
	}
	return isWantedName(s, wanted)
}

// isWantedName reports whether s starts with a wanted metric name followed
// by '{', a blank or the end. The byte after where the name would end is
// checked first: it rules out almost every line without comparing names.
func isWantedName(s []byte, wanted []string) bool {
	for _, w := range wanted {
		n := len(w)
		if len(s) < n {
			continue
		}
		if len(s) > n {
			if c := s[n]; c != '{' && c != ' ' && c != '\t' {
				continue
			}
		}
		if string(s[:n]) == w {
			return true
		}
	}
	return false
}

func trimBlank(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

// lineFilter is keepLine for one set of wanted names, with what rules a
// line out precomputed: the bytes a wanted name can start with, and its
// lengths, so a line costs one table lookup and a few byte checks instead
// of a pass over every name. The fast path reads every line through it.
type lineFilter struct {
	first  [256]bool
	byLen  []lenGroup
	wanted []string

	// The 8 bytes at off of every wanted name (off: the names' common
	// prefix, e.g. "vllm:"), when every name is that long: one load and a
	// few compares rule out the lines of other families with the same
	// first byte, which in an engine's exposition is nearly all of them.
	off   int
	words []uint64
}

type lenGroup struct {
	n     int
	names []string
}

func (f *lineFilter) reset(wanted []string) {
	*f = lineFilter{byLen: f.byLen[:0], wanted: append(f.wanted[:0], wanted...), words: f.words[:0]}
	f.setWords()
	for _, w := range f.wanted {
		if w == "" {
			continue
		}
		f.first[w[0]] = true
		found := false
		for i := range f.byLen {
			if f.byLen[i].n == len(w) {
				f.byLen[i].names = append(f.byLen[i].names, w)
				found = true
			}
		}
		if !found {
			f.byLen = append(f.byLen, lenGroup{n: len(w), names: []string{w}})
		}
	}
}

// keep is keepLine(line, wanted).
func (f *lineFilter) keep(line []byte) bool {
	if len(line) == 0 {
		return false
	}
	s := line
	if c := s[0]; c == ' ' || c == '\t' {
		s = trimBlank(s)
		if len(s) == 0 {
			return false
		}
	}
	switch c := s[0]; {
	case c == '{':
		return true
	case c == '#':
		s = trimBlank(s[1:])
		if len(s) < 5 || string(s[:4]) != "TYPE" || (s[4] != ' ' && s[4] != '\t') {
			return false
		}
		s = trimBlank(s[4:])
		if len(s) > 0 && s[0] == '"' {
			return true
		}
		return len(s) > 0 && f.wantedName(s)
	case !f.first[c]:
		return false
	}
	return f.wantedName(s)
}

// setWords fills off and words, or leaves words empty when a wanted name
// is shorter than its common prefix with the others plus 8 bytes.
func (f *lineFilter) setWords() {
	var names []string
	for _, w := range f.wanted {
		if w != "" {
			names = append(names, w)
		}
	}
	if len(names) == 0 {
		return
	}
	off := len(names[0])
	for _, w := range names[1:] {
		n := 0
		for n < off && n < len(w) && w[n] == names[0][n] {
			n++
		}
		off = n
	}
	for _, w := range names {
		off = min(off, len(w)-8)
	}
	if off < 0 {
		return
	}
	f.off = off
	for _, w := range names {
		if v := binary.LittleEndian.Uint64([]byte(w[off : off+8])); !slices.Contains(f.words, v) {
			f.words = append(f.words, v)
		}
	}
}

func (f *lineFilter) wantedName(s []byte) bool {
	if !f.first[s[0]] {
		return false
	}
	if len(f.words) > 0 {
		if len(s) < f.off+8 || !slices.Contains(f.words, binary.LittleEndian.Uint64(s[f.off:])) {
			return false // shorter than every wanted name, or none of them
		}
	}
	for i := range f.byLen {
		g := &f.byLen[i]
		if len(s) < g.n {
			continue
		}
		if len(s) > g.n {
			if c := s[g.n]; c != '{' && c != ' ' && c != '\t' {
				continue
			}
		}
		for _, w := range g.names {
			if string(s[:g.n]) == w {
				return true
			}
		}
	}
	return false
}
