package transform

import (
	"encoding/binary"
	"math/bits"
)

// wholeDocument reads the JSON document that opens with the '{' at b[i]
// as a new jsonWalker watching "model" and "usage" (the meter's) reads it,
// when b holds all of it: the usual unstreamed answer, which Envoy hands
// over buffered. Its state is in locals and its strings are read a word at
// a time, where the walker keeps its state in memory for the next chunk
// and calls a method for each string: this costs about a third (issue 11:
// the walk of a 470-byte answer was 8.1k of the 95.8k instructions of a
// 4 KiB exchange). Like the walker it checks nothing: on any bytes it
// reports what the walker reports (FuzzJSONWalkerMatchesReference).
//
// It returns the spans of the last model and usage values the walker would
// report (noSpan for none) and end, the index after the document, or -1
// when the document goes on past b: then the walker reads it, from the
// start.
func wholeDocument(b []byte, i int) (model, usage span, end int) {
	model, usage = noSpan, noSpan
	pending := fieldNone // the key just read names a watched field
	wantKey := true      // the next string is a key
	for i++; i < len(b); i++ {
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r', ':':
		case ',':
			wantKey = true
		case '"':
			j := quoteEnd(b, i+1)
			if j < 0 {
				return noSpan, noSpan, -1
			}
			if wantKey {
				pending = keyField(b[i+1 : j])
			} else {
				model, usage = note(pending, span{i, j + 1}, model, usage)
				pending = fieldNone
			}
			wantKey = false
			i = j
		case '{', '[':
			j := containerEnd(b, i+1)
			if j < 0 {
				return noSpan, noSpan, -1
			}
			model, usage = note(pending, span{i, j + 1}, model, usage)
			pending, wantKey = fieldNone, false
			i = j
		case '}', ']':
			return model, usage, i + 1
		default: // a byte of a number, true, false or null
			pending = fieldNone
		}
	}
	return noSpan, noSpan, -1
}

// keyField is the watched field a top-level key names, as sent: a key with
// an escape names none, as no watched name has one.
func keyField(k []byte) field {
	switch string(k) {
	case "model":
		return fieldModel
	case "usage":
		return fieldUsage
	}
	return fieldNone
}

// note makes v the last value of f.
func note(f field, v, model, usage span) (span, span) {
	switch f {
	case fieldModel:
		model = v
	case fieldUsage:
		usage = v
	}
	return model, usage
}

// containerEnd returns the index of the bracket that closes the container
// whose content starts at b[i], counting brackets outside strings as the
// walker does (skipNested), or -1 when b ends first.
func containerEnd(b []byte, i int) int {
	d := 1
	for {
		for i < len(b) && !nestedStops[b[i]] {
			i++
		}
		if i == len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			if i = quoteEnd(b, i+1); i < 0 {
				return -1
			}
		case '{', '[':
			d++
		default: // '}', ']'
			if d--; d == 0 {
				return i
			}
		}
		i++
	}
}

// quoteEnd returns the index of the '"' that ends the string whose text
// starts at b[i], or -1 when b ends first. Its first 32 bytes are read a
// word at a time, stepping over each escape whole (most strings end
// there: bytes.IndexByte costs a call and a setup); the rest of a long
// string is searched at memory speed.
func quoteEnd(b []byte, i int) int {
	for k := 0; k < 4 && i+8 <= len(b); k++ {
		m := quotesOrBackslashes(binary.LittleEndian.Uint64(b[i:]))
		if m == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(m) / 8
		if b[i] == '"' {
			return i
		}
		i += 2 // a backslash: the byte after it is text
	}
	return closingQuote(b, i)
}

// quotesOrBackslashes marks (high bit) the '"' and '\\' bytes of an 8-byte
// word read little endian; only the lowest mark is exact (see stringStops).
func quotesOrBackslashes(v uint64) uint64 {
	quote := v ^ (ones * '"')
	slash := v ^ (ones * '\\')
	return ((quote-ones)&^quote | (slash-ones)&^slash) & highs
}
