package prefix

import (
	"bytes"
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// AppendHashes appends the prompt's block hashes to dst: the prompt is cut
// into blockSize-byte blocks (a trailing partial block is not cacheable and is
// left out), at most maxBlocks of them, and chained so that a hash stands for
// the whole prefix up to its block:
//
//	h0 = xxhash(model), hi = xxhash(block_i || h(i-1))
//
// The model is in the chain, so prefixes of different models or LoRA
// adapters never match. h0 is the model's hash, as in Request.ModelKey.
func AppendHashes(dst []uint64, h0 uint64, prompt []byte, blockSize, maxBlocks int) []uint64 {
	return appendChain(dst, h0, prompt, blockSize, maxBlocks, true)
}

// ModelHash is h0 for a model name.
func ModelHash(model string) uint64 { return xxhash.Sum64String(model) }

// chainHash returns the hash of the first blocks blocks, the last one
// AppendHashes would append, without storing the others.
func chainHash(h0 uint64, prompt []byte, blockSize, blocks int) uint64 {
	var last [1]uint64
	return appendChain(last[:0], h0, prompt, blockSize, blocks, false)[0]
}

// appendChain hashes the chain from h0. With all set it appends every hash,
// otherwise only the last one.
func appendChain(dst []uint64, h0 uint64, prompt []byte, blockSize, maxBlocks int, all bool) []uint64 {
	prev := h0
	// One-shot hashing of a contiguous block||prev is the fastest xxhash
	// path; a stack buffer holds it for the usual block sizes.
	var stack [136]byte
	var buf []byte
	if blockSize+8 <= len(stack) {
		buf = stack[:blockSize+8]
	} else {
		buf = make([]byte, blockSize+8)
	}
	for i, n := 0, 0; i+blockSize <= len(prompt) && n < maxBlocks; i, n = i+blockSize, n+1 {
		copy(buf, prompt[i:i+blockSize])
		binary.LittleEndian.PutUint64(buf[blockSize:], prev)
		prev = xxhash.Sum64(buf)
		if all {
			dst = append(dst, prev)
		}
	}
	if !all {
		dst = append(dst, prev)
	}
	return dst
}

// firstElementEnd returns the offset just past the first element of the JSON
// array at the start of p, looking no further than limit bytes, or -1 when p
// is not an array or the element does not end within limit. For chat
// messages the first element is usually the system prompt.
func firstElementEnd(p []byte, limit int) int {
	limit = min(limit, len(p))
	i := 0
	for i < limit && isSpace(p[i]) {
		i++
	}
	if i >= limit || p[i] != '[' {
		return -1
	}
	for i++; i < limit && isSpace(p[i]); i++ {
	}
	depth := 0
	for ; i < limit; i++ {
		switch p[i] {
		case '"':
			// Jump to the closing quote: strings are most of a prompt, and
			// IndexByte is vectorized.
			for {
				j := bytes.IndexByte(p[i+1:limit], '"')
				if j < 0 {
					return -1
				}
				i += 1 + j
				if !escaped(p, i) {
					break
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return -1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// escaped reports whether the quote at p[i] is preceded by an odd number of
// backslashes.
func escaped(p []byte, i int) bool {
	n := 0
	for k := i - 1; k >= 0 && p[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
