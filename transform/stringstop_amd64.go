//go:build amd64 && !purego

package transform

import "golang.org/x/sys/cpu"

// hasStopIndex: indexStop is the AVX2 routine, which checks 32 bytes a
// step, so scanString hands long strings to scanStringIndexed.
var hasStopIndex = cpu.X86.HasAVX2

// indexStop returns the index of the first byte of b[i:] that is '"', '\\'
// or a control character, or len(b).
func indexStop(b []byte, i int) int {
	if len(b) < 32 {
		return indexStopBytes(b, i)
	}
	return indexStopAVX2(b, i)
}

// indexStopAVX2 is indexStop for len(b) >= 32 (it may read b before i).
//
//go:noescape
func indexStopAVX2(b []byte, i int) int
