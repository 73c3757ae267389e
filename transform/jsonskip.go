package transform

// skipValue returns the index after the valid JSON value that starts at or
// after b[i] (after white space), where the value is nested in depth
// containers; -1 when the value is invalid, cut short or would nest deeper
// than maxDepth. It checks exactly what scanNested checks, without reporting
// anything: for a reader that walks the few members it wants itself and
// jumps over the rest. Long strings are skipped at memory speed
// (scanString).
func skipValue(b []byte, i, depth int) int {
	i = skipSpace(b, i)
	if i == len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return scanString(b, i+1)
	case '{', '[':
		return skipContainer(b, i, depth)
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return scanNumber(b, i)
}

// skipContainer is skipValue for the object or array that starts at b[i].
func skipContainer(b []byte, i, depth int) int {
	var stack [maxDepth / 64]uint64 // bit set: the container at that depth is an object
	base := depth

value: // a value starts at or after b[i]
	i = skipSpace(b, i)
	if i == len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '{', '[':
		if depth == maxDepth {
			return -1
		}
		if c == '{' {
			stack[depth/64] |= 1 << (depth % 64)
		} else {
			stack[depth/64] &^= 1 << (depth % 64)
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
		i = scanString(b, i+1)
	case 't':
		i = literal(b, i, "true")
	case 'f':
		i = literal(b, i, "false")
	case 'n':
		i = literal(b, i, "null")
	default:
		i = scanNumber(b, i)
	}
	if i < 0 {
		return -1
	}

next: // a value just ended before b[i]
	if depth == base {
		return i
	}
	i = skipSpace(b, i)
	if i == len(b) {
		return -1
	}
	switch inObject := stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0; b[i] {
	case ',':
		i++
		if inObject {
			goto member
		}
		goto value
	case '}', ']':
		if (b[i] == '}') != inObject {
			return -1
		}
		depth--
		i++
		goto next
	}
	return -1

member: // an object member's key starts at or after b[i]
	if i = memberValue(b, i); i < 0 {
		return -1
	}
	goto value
}

// memberValue reads an object member's key, which starts at or after b[i],
// and its colon, and returns where its value starts (after white space), or
// -1.
func memberValue(b []byte, i int) int {
	_, _, v := memberKey(b, i)
	return v
}

// containerStart returns where the first member or element of the object or
// array opened at b[i] starts (after white space), or -1 when it is empty
// (then end is the index after its closing bracket). It does not check
// what comes next.
func containerStart(b []byte, i int) (first, end int) {
	c := b[i]
	i = skipSpace(b, i+1)
	if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
		return -1, i + 1
	}
	return i, -1
}

// nextItem reads what follows a member or element that ended before b[i]
// in an object (obj) or array: a comma (more: the next one starts at
// next), or the closing bracket (next is the index after it). ok is false
// for anything else.
func nextItem(b []byte, i int, obj bool) (next int, more, ok bool) {
	if i = skipSpace(b, i); i == len(b) {
		return i, false, false
	}
	switch b[i] {
	case ',':
		return i + 1, true, true
	case '}':
		return i + 1, false, obj
	case ']':
		return i + 1, false, !obj
	}
	return i, false, false
}

// memberKey reads an object member's key, which starts at or after b[i],
// and its colon: the key spans b[key:keyEnd] (quotes included) and the
// value starts at value (after white space); value is -1 when the member is
// invalid.
func memberKey(b []byte, i int) (key, keyEnd, value int) {
	if i = skipSpace(b, i); i == len(b) || b[i] != '"' {
		return i, i, -1
	}
	key = i
	if i = scanString(b, i+1); i < 0 {
		return key, key, -1
	}
	keyEnd = i
	if i = skipSpace(b, i); i == len(b) || b[i] != ':' {
		return key, keyEnd, -1
	}
	return key, keyEnd, skipSpace(b, i+1)
}
