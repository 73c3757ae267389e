//go:build !amd64 || purego

package transform

// hasStopIndex: no vector routine here; scanString's word-at-a-time and
// bytes.IndexByte path is the faster.
const hasStopIndex = false

func indexStop(b []byte, i int) int { return indexStopBytes(b, i) }
