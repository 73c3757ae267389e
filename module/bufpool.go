package main

import (
	"math/bits"
	"sync"
)

// Request bodies are copied out of Envoy's memory into pooled buffers, in
// power-of-two size classes from 8 KiB to 4 MiB (the default body limit),
// so a body of any size up to that reuses a buffer instead of asking the
// heap (and the GC) for a new one per request. sync.Pool keeps buffers per
// P and lets the GC take back those that stay unused for two cycles, so a
// burst of large bodies does not pin its memory for good.
const (
	minBodyClass   = 13 // 8 KiB
	maxBodyClass   = 22 // 4 MiB: larger bodies are not pooled
	maxPooledBody  = 1 << maxBodyClass
	numBodyClasses = maxBodyClass - minBodyClass + 1
)

var bodyPools [numBodyClasses]sync.Pool

// bodyClass is the index of the smallest class holding n bytes, or -1
// when n is over maxPooledBody.
func bodyClass(n int) int {
	if n > maxPooledBody {
		return -1
	}
	if n <= 1<<minBodyClass {
		return 0
	}
	return bits.Len(uint(n-1)) - minBodyClass
}

// getBody returns an empty buffer with room for n bytes.
func getBody(n int) *[]byte {
	c := bodyClass(n)
	if c < 0 {
		b := make([]byte, 0, n)
		return &b
	}
	if p, _ := bodyPools[c].Get().(*[]byte); p != nil {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, 1<<(c+minBodyClass))
	return &b
}

// putBody returns a buffer from getBody; nothing may point into it after.
// It goes back to the class its capacity fills (a buffer append grew
// lands in a larger class, or none).
func putBody(p *[]byte) {
	if p == nil {
		return
	}
	n := cap(*p)
	if n < 1<<minBodyClass || n > maxPooledBody {
		return
	}
	c := bits.Len(uint(n)) - 1 - minBodyClass // the largest class n fills
	bodyPools[c].Put(p)
}
