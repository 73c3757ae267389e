package main

import "sync"

// maxPooledBody caps the buffers kept for reuse: a rare huge body should
// not pin its memory in the pool.
const maxPooledBody = 256 << 10

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// getBody returns an empty buffer with room for n bytes.
func getBody(n int) *[]byte {
	if n > maxPooledBody {
		b := make([]byte, 0, n)
		return &b
	}
	p := bodyPool.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, 0, n)
	}
	*p = (*p)[:0]
	return p
}

// putBody returns a buffer from getBody; nothing may point into it after.
func putBody(p *[]byte) {
	if p != nil && cap(*p) <= maxPooledBody {
		bodyPool.Put(p)
	}
}
