//go:build amd64 && !purego

package transform

import "golang.org/x/sys/cpu"

// hasStopIndex: indexStop is the AVX2 routine, which checks 32 bytes a
// step, so scanString hands long strings to scanStringIndexed.
var hasStopIndex = cpu.X86.HasAVX2

// prefixWords is how many words scanString reads before it calls
// indexStop: past 16 bytes a call costs less than more words (a constant:
// a variable bound slows the loop; without AVX2, rare on amd64, strings of
// 16 to 64 bytes then take the slower windows).
const prefixWords = 2

// indexStop returns the index of the first byte of b[i:] that is '"', '\\'
// or a control character, or len(b).
func indexStop(b []byte, i int) int {
	if len(b) < 32 || !hasStopIndex {
		return indexStopBytes(b, i)
	}
	return indexStopAVX2(b, i)
}

// indexStopAVX2 is indexStop for len(b) >= 32 (it may read b before i).
//
//go:noescape
func indexStopAVX2(b []byte, i int) int
