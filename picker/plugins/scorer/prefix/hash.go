package prefix

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// AppendHashes appends the prompt's block hashes to dst: the prompt is cut
// into blockSize-byte blocks (a trailing partial block is not cacheable and is
// left out), at most maxBlocks of them, and the hash of block i stands for the
// whole prefix up to and including it:
//
//	h_i = XXH64(prompt[:(i+1)*blockSize], seed h0)
//
// h0 seeds every hash, so prefixes of different models or LoRA adapters
// never match. h0 is the model's hash, as in Request.ModelKey.
func AppendHashes(dst []uint64, h0 uint64, prompt []byte, blockSize, maxBlocks int) []uint64 {
	return appendPrefixHashes(dst, h0, prompt, blockSize, maxBlocks, true)
}

// ModelHash is h0 for a model name.
func ModelHash(model string) uint64 { return xxhash.Sum64String(model) }

// chainHash returns the hash of the first blocks blocks, the last one
// AppendHashes would append, without finishing the others.
func chainHash(h0 uint64, prompt []byte, blockSize, blocks int) uint64 {
	var last [1]uint64
	return appendPrefixHashes(last[:0], h0, prompt, blockSize, blocks, false)[0]
}

// appendPrefixHashes hashes the prompt's prefixes from h0 in one pass. With
// all set it appends the hash of every block, otherwise only the last one.
//
// It is XXH64 inlined so that the running state survives each block: the
// 32-byte stripes of the prompt are folded in once, and only the finish is
// paid per block. Hashing each block with the previous hash, or streaming
// through xxhash.Digest, pays a call and a copy per block and measured
// 1.4-1.6x slower on 64-byte blocks. TestPrefixHashesAreXXH64 pins the
// result to the xxhash package.
func appendPrefixHashes(dst []uint64, h0 uint64, prompt []byte, blockSize, maxBlocks int, all bool) []uint64 {
	n := min(len(prompt)/blockSize, maxBlocks)
	v1, v2, v3, v4 := h0+prime1+prime2, h0+prime2, h0, h0-prime1
	folded := 0 // prompt bytes folded into v1..v4, a multiple of 32
	for b := 1; b <= n; b++ {
		end := b * blockSize
		for ; folded+32 <= end; folded += 32 {
			s := prompt[folded : folded+32]
			v1 = round(v1, binary.LittleEndian.Uint64(s[0:8]))
			v2 = round(v2, binary.LittleEndian.Uint64(s[8:16]))
			v3 = round(v3, binary.LittleEndian.Uint64(s[16:24]))
			v4 = round(v4, binary.LittleEndian.Uint64(s[24:32]))
		}
		if all || b == n {
			dst = append(dst, finish(v1, v2, v3, v4, prompt[folded:end], uint64(end)))
		}
	}
	if !all && n == 0 {
		dst = append(dst, h0)
	}
	return dst
}

// XXH64's primes.
const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
	prime5 uint64 = 2870177450012600261
)

func round(acc, in uint64) uint64 {
	return bits.RotateLeft64(acc+in*prime2, 31) * prime1
}

func mergeRound(h, v uint64) uint64 {
	return (h^round(0, v))*prime1 + prime4
}

// finish is XXH64's end: merge the four lanes, fold in the tail (fewer than
// 32 bytes not yet folded) and avalanche. total is the length hashed.
func finish(v1, v2, v3, v4 uint64, tail []byte, total uint64) uint64 {
	var h uint64
	if total >= 32 {
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = mergeRound(h, v1)
		h = mergeRound(h, v2)
		h = mergeRound(h, v3)
		h = mergeRound(h, v4)
	} else {
		h = v3 + prime5 // v3 is still the seed
	}
	h += total
	for ; len(tail) >= 8; tail = tail[8:] {
		h ^= round(0, binary.LittleEndian.Uint64(tail))
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
	}
	if len(tail) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(tail)) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		tail = tail[4:]
	}
	for _, c := range tail {
		h ^= uint64(c) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
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
