package transform

import (
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
// strings eight bytes at a time.
func scanTopLevel(b []byte, field func(key, value span) bool) bool {
	var (
		stack    [maxDepth / 64]uint64 // bit set: the container at that depth is an object
		depth    int
		i        int
		key      span // of the top-level member being read
		keyAt    int
		start    int // of its value
		inObject bool
	)

value: // a value starts at or after b[i]
	i = skipSpace(b, i)
	if i == len(b) {
		return false
	}
	if depth == 1 {
		start = i
	}
	switch c := b[i]; c {
	case '{', '[':
		if depth == maxDepth {
			return false
		}
		if c == '{' {
			stack[depth/64] |= 1 << (depth % 64)
		} else {
			stack[depth/64] &^= 1 << (depth % 64)
		}
		if depth == 0 {
			key = noSpan
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
	if depth == 1 && field != nil && !field(key, span{start, i}) {
		field = nil // seen all we need: only check the rest
	}
	if depth == 0 {
		return skipSpace(b, i) == len(b)
	}
	i = skipSpace(b, i)
	if i == len(b) {
		return false
	}
	inObject = stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0
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
	if depth == 1 {
		key = span{keyAt, i}
	}
	i = skipSpace(b, i)
	if i == len(b) || b[i] != ':' {
		return false
	}
	i++
	goto value
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

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
func scanString(b []byte, i int) int {
	for {
		for i+8 <= len(b) {
			m := stringStops(binary.LittleEndian.Uint64(b[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !hex4(b[i+2:i+6]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

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
