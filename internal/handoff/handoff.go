// Package handoff passes a value from one filter of a stream to a later
// filter of the same stream, in-process, without publishing a pointer. The
// value stays in a process-wide table under a token; only the token travels
// through Envoy (the stream's filter state), where access logs and other
// filters can read it but learn nothing from it.
//
// A token is 122 bits from a ChaCha8 generator (math/rand/v2's
// cryptographically strong one) seeded from crypto/rand, plus 6 bits naming
// the table shard that holds it: no client or filter can guess a live one,
// and a table never holds two entries under one token. An entry is
// also bound to the connection it was made on: a token copied onto another
// stream (by a filter that could read it) opens nothing there unless that
// stream is on the same downstream connection, i.e. the same client, and the
// same worker thread. The owner deletes the entry when its stream ends.
//
// A Table is safe for concurrent use by every worker thread.
package handoff

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Token names one entry. Its text form (AppendText) is 32 hex digits.
type Token [16]byte

// TokenLen is the length of a token's text form.
const TokenLen = 2 * len(Token{})

// AppendText appends the token's text form to b.
func (t Token) AppendText(b []byte) []byte { return hex.AppendEncode(b, t[:]) }

// ParseToken reads a token's text form; anything else is refused.
func ParseToken(b []byte) (Token, bool) {
	var t Token
	if len(b) != TokenLen {
		return t, false
	}
	if _, err := hex.Decode(t[:], b); err != nil {
		return t, false
	}
	return t, true
}

const shards = 64 // a power of two: a token's first byte's low bits name its shard

// Table holds live entries of values of type T.
type Table[T any] struct {
	next   atomic.Uint64 // spreads Puts over the shards
	shards [shards]shard[T]
}

type shard[T any] struct {
	mu  sync.Mutex
	m   map[Token]entry[T]
	rng *rand.ChaCha8 // not safe for concurrent use: guarded by mu
	_   [32]byte      // keep shards on separate cache lines
}

type entry[T any] struct {
	conn uint64
	v    *T
}

// New returns an empty table whose generators are seeded from crypto/rand.
func New[T any]() *Table[T] {
	t := &Table[T]{}
	for i := range t.shards {
		var seed [32]byte
		crand.Read(seed[:]) // never fails on Linux (Go 1.24+ crashes the program rather than return an error)
		t.shards[i].m = map[Token]entry[T]{}
		t.shards[i].rng = rand.NewChaCha8(seed)
	}
	return t
}

func (t *Table[T]) shard(tok Token) *shard[T] { return &t.shards[tok[0]&(shards-1)] }

// Put stores v for the stream on connection conn and returns its new token.
func (t *Table[T]) Put(conn uint64, v *T) Token {
	i := byte(t.next.Add(1) & (shards - 1))
	s := &t.shards[i]
	var tok Token
	s.mu.Lock()
	for {
		binary.LittleEndian.PutUint64(tok[:8], s.rng.Uint64())
		binary.LittleEndian.PutUint64(tok[8:], s.rng.Uint64())
		tok[0] = tok[0]&^(shards-1) | i
		if _, taken := s.m[tok]; !taken { // 2^-122 per live entry: never, in practice
			break
		}
	}
	s.m[tok] = entry[T]{conn: conn, v: v}
	s.mu.Unlock()
	return tok
}

// Replace puts v under a live token (its owner publishes again); false when
// the token is not live.
func (t *Table[T]) Replace(tok Token, v *T) bool {
	s := t.shard(tok)
	s.mu.Lock()
	e, ok := s.m[tok]
	if ok {
		e.v = v
		s.m[tok] = e
	}
	s.mu.Unlock()
	return ok
}

// Get returns the value under tok if it is live and was put on conn, else
// nil.
func (t *Table[T]) Get(tok Token, conn uint64) *T {
	s := t.shard(tok)
	s.mu.Lock()
	e, ok := s.m[tok]
	s.mu.Unlock()
	if !ok || e.conn != conn {
		return nil
	}
	return e.v
}

// Delete removes the entry under tok (its stream ended). Deleting twice is
// harmless.
func (t *Table[T]) Delete(tok Token) {
	s := t.shard(tok)
	s.mu.Lock()
	delete(s.m, tok)
	s.mu.Unlock()
}

// Len counts live entries (for tests: every stream end path deletes).
func (t *Table[T]) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
