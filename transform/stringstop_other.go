//go:build !amd64 || purego

package transform

// hasStopIndex: no vector routine here; scanString's word-at-a-time and
// bytes.IndexByte path is the faster.
const hasStopIndex = false

// prefixWords: scanString reads the first 64 bytes (or 8 stops) word by
// word before it searches with bytes.IndexByte.
const prefixWords = 8

func indexStop(b []byte, i int) int { return indexStopBytes(b, i) }
