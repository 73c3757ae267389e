package transform

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// maxDepth bounds the nesting of a request body, as Python's JSON parser
// (the server's) is bounded by its recursion limit.
const maxDepth = 1024

// scanTopLevel checks that b is one valid JSON value (RFC 8259; strings are
// not checked for UTF-8, as in encoding/json) and, in the same pass, calls
// field for each member of a top-level object with the spans of its raw key
// and raw value, or for each element of a top-level array (with key
// noSpan). Once field returns false it is called no more, but the rest is
// still checked. The scan copies nothing and allocates nothing.
//
// gjson would take two passes: one to validate (its readers are lenient) and
// one to find the members. This does both at once, and skips the text of
// long strings at memory speed (see scanString).
func scanTopLevel(b []byte, field func(key, value span) bool) bool {
	if field == nil {
		return scanNested(b, 0, nil)
	}
	return scanNested(b, 1, func(_ int, path jsonPath, value span) bool {
		return field(path[0], value)
	})
}

// jsonPath holds the keys of the members a value is nested in, from the top
// level down: path[d-1] is the key of the member at depth d (noSpan for an
// array element).
type jsonPath [maxPathDepth]span

const maxPathDepth = 4

// scanNested is scanTopLevel for values down to depth levels (at most
// maxPathDepth): it calls field for each member or element at depths 1 to
// levels when its value ends (so a container's members come before the
// container itself), with its depth, the keys of its path and the span of
// its value. Once field returns false it is called no more. A value nested
// in a member is reported before it is known whether the whole document is
// valid: a caller that must not count it then waits for its depth-1 member.
func scanNested(b []byte, levels int, field func(depth int, path jsonPath, value span) bool) bool {
	var (
		stack    [maxDepth / 64]uint64 // bit set: the container at that depth is an object
		depth    int
		i        int
		path     jsonPath // of the member being read, down to levels
		starts   [maxPathDepth]int
		keyAt    int
		inObject bool
	)

value: // a value starts at or after b[i]
	i = skipSpace(b, i)
	if i == len(b) {
		return false
	}
	if depth >= 1 && depth <= levels {
		starts[depth-1] = i
	}
	switch c := b[i]; c {
	case '{', '[':
		if depth == maxDepth {
			return false
		}
		if c == '{' {
			stack[uint(depth)/64] |= 1 << (uint(depth) % 64)
		} else {
			stack[uint(depth)/64] &^= 1 << (uint(depth) % 64)
			if depth < levels {
				path[depth] = noSpan
			}
		}
		depth++
		i = skipSpace(b, i+1)
		if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
			depth--
			i++
			goto next
		}
		if c == '{' {
			goto member
		}
		goto value
	case '"':
		if i = scanString(b, i+1); i < 0 {
			return false
		}
	case 't':
		if i = literal(b, i, "true"); i < 0 {
			return false
		}
	case 'f':
		if i = literal(b, i, "false"); i < 0 {
			return false
		}
	case 'n':
		if i = literal(b, i, "null"); i < 0 {
			return false
		}
	default:
		if i = scanNumber(b, i); i < 0 {
			return false
		}
	}

next: // a value just ended before b[i]
	if depth >= 1 && depth <= levels && field != nil && !field(depth, path, span{starts[depth-1], i}) {
		field = nil // seen all we need: only check the rest
	}
	if depth == 0 {
		return skipSpace(b, i) == len(b)
	}
	i = skipSpace(b, i)
	if i == len(b) {
		return false
	}
	inObject = stack[uint(depth-1)/64]>>(uint(depth-1)%64)&1 != 0 // unsigned: shifts, not divisions
	switch b[i] {
	case ',':
		i++
		if inObject {
			goto member
		}
		goto value
	case '}', ']':
		if (b[i] == '}') != inObject {
			return false
		}
		depth--
		i++
		goto next
	}
	return false

member: // an object member's key starts at or after b[i]
	i = skipSpace(b, i)
	if i == len(b) || b[i] != '"' {
		return false
	}
	keyAt = i
	if i = scanString(b, i+1); i < 0 {
		return false
	}
	if depth <= levels {
		path[depth-1] = span{keyAt, i}
	}
	i = skipSpace(b, i)
	if i == len(b) || b[i] != ':' {
		return false
	}
	i++
	goto value
}

// skipSpace returns the index of the first byte at or after b[i] that is
// not JSON whitespace. One comparison passes the usual byte (above ' ').
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && uint64(spaces)>>b[i]&1 != 0 {
		i++
	}
	return i
}

// spaces has bit c set for each JSON whitespace byte c.
const spaces = 1<<' ' | 1<<'\t' | 1<<'\n' | 1<<'\r'

func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// scanNumber returns the end of the number starting at b[i], or -1.
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := digits(b, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if j := digits(b, i); j > i {
			i = j
		} else {
			return -1
		}
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// scanString returns the index after the closing quote of the string whose
// text starts at b[i], or -1 when the string is invalid or unterminated.
//
// The first prefixWords words (or as many stops) are read a word at a time,
// which is the fastest for keys, names and short values. Past them, a
// vector routine finds the next '"', '\\' or control character where there
// is one (scanStringIndexed, amd64 with AVX2); elsewhere bytes.IndexByte
// finds '"' and '\\', and control characters are looked for word by word
// (scanStringWindows).
func scanString(b []byte, i int) int {
	for k := 0; k < prefixWords && i+8 <= len(b); k++ {
		m := stringStops(binary.LittleEndian.Uint64(b[i:]))
		if m == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(m) / 8
		if b[i] == '"' {
			return i + 1
		}
		if b[i] < 0x20 {
			return -1
		}
		if i = escape(b, i); i < 0 {
			return -1
		}
	}
	if hasStopIndex {
		return scanStringIndexed(b, i)
	}
	return scanStringWindows(b, i)
}

// scanStringWindows is scanString past its first words, portably: it finds
// '"' and then '\\' with bytes.IndexByte (vectorised in the runtime), in
// windows that stay in the L1 cache for the check of the text before
// whichever comes first for control characters (64 bytes a step). A '"'
// found stays known across the escapes before it, so each byte is searched
// once for each.
func scanStringWindows(b []byte, i int) int {
	quote, found := i, false // no '"' in b[i:quote]; found: b[quote] is one
	for {
		if quote < i {
			quote, found = i, false
		}
		if !found && quote < len(b) {
			end := min(len(b), max(quote, i)+scanWindow)
			if q := bytes.IndexByte(b[quote:end], '"'); q >= 0 {
				quote, found = quote+q, true
			} else {
				quote = end
			}
		}
		if !found && quote == len(b) {
			return -1 // unterminated, whatever comes before
		}
		stop := quote
		if s := bytes.IndexByte(b[i:quote], '\\'); s >= 0 {
			stop = i + s
		}
		if hasControl(b, i, stop) {
			return -1
		}
		switch {
		case stop < quote:
			if i = escape(b, stop); i < 0 {
				return -1
			}
		case found:
			return quote + 1
		default:
			i = quote
		}
	}
}

// scanWindow is how much of a long string scanString searches at once.
const scanWindow = 4 << 10

// escape returns the index after the escape sequence at b[i] ('\\'), or -1.
func escape(b []byte, i int) int {
	if i+1 >= len(b) {
		return -1
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2
	case 'u':
		if i+6 > len(b) || !hex4(b[i+2:i+6]) {
			return -1
		}
		return i + 6
	}
	return -1
}

// hasControl reports whether b[i:end] holds a control character.
func hasControl(b []byte, i, end int) bool {
	for ; i+64 <= end; i += 64 {
		w := b[i : i+64]
		if (controlBorrows(binary.LittleEndian.Uint64(w))|controlBorrows(binary.LittleEndian.Uint64(w[8:]))|
			controlBorrows(binary.LittleEndian.Uint64(w[16:]))|controlBorrows(binary.LittleEndian.Uint64(w[24:]))|
			controlBorrows(binary.LittleEndian.Uint64(w[32:]))|controlBorrows(binary.LittleEndian.Uint64(w[40:]))|
			controlBorrows(binary.LittleEndian.Uint64(w[48:]))|controlBorrows(binary.LittleEndian.Uint64(w[56:])))&highs != 0 {
			return true
		}
	}
	for ; i+8 <= end; i += 8 {
		if controls(binary.LittleEndian.Uint64(b[i:])) != 0 {
			return true
		}
	}
	if i < end && i+8 <= len(b) { // the last bytes, in a word that reads past end
		return controls(binary.LittleEndian.Uint64(b[i:]))&(1<<(8*(end-i))-1) != 0
	}
	for ; i < end; i++ {
		if b[i] < 0x20 {
			return true
		}
	}
	return false
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// controls marks (high bit) the control characters (bytes < 0x20) of an
// 8-byte word read little endian; only the lowest mark is exact, as in
// stringStops.
func controls(v uint64) uint64 {
	return controlBorrows(v) & highs
}

// controlBorrows is controls before the mask: words can be or-ed first.
func controlBorrows(v uint64) uint64 { return (v - ones*0x20) &^ v }

// stringStops marks (high bit) the bytes of an 8-byte word, read little
// endian, that end a run of plain string text: '"', '\\' and control
// characters. Only the lowest mark is exact (a borrow may mark bytes above
// it), which is all scanString uses.
func stringStops(v uint64) uint64 {
	quote := v ^ (ones * '"')
	slash := v ^ (ones * '\\')
	return ((quote-ones)&^quote | (slash-ones)&^slash | (v-ones*0x20)&^v) & highs
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
