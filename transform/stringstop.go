package transform

// scanStringIndexed is scanString past its first words where indexStop is
// a vector routine: one pass finds the next byte that ends plain text, so
// each byte of a long string is read once, at about a third of an
// instruction a byte (the portable path reads it three times: '"',
// '\\', control characters).
func scanStringIndexed(b []byte, i int) int {
	for {
		i = indexStop(b, i)
		switch {
		case i == len(b):
			return -1
		case b[i] == '"':
			return i + 1
		case b[i] < 0x20:
			return -1
		}
		if i = escape(b, i); i < 0 {
			return -1
		}
	}
}

// indexStopBytes is indexStop a byte at a time, for short buffers.
func indexStopBytes(b []byte, i int) int {
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}
