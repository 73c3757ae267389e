package transform

import (
	"hash/maphash"
	"sync"
	"time"
)

// Budgets are local token budgets: each key may spend a number of tokens per
// fixed window of time (windows start at multiples of the window length since
// the Unix epoch). A request is checked when it arrives and charged its actual
// usage when it ends, so the last request of a window may overshoot; the key
// then waits for the next window.
//
// Budgets are safe for concurrent use. Memory is bounded by the maximum
// number of keys: entries from past windows are dropped first, and when every
// entry is current the one that spent least is forgotten.
type Budgets struct {
	tokens   uint64
	window   time.Duration
	perShard int
	seed     maphash.Seed
	now      func() time.Time
	shards   [budgetShards]budgetShard
}

const budgetShards = 64

type budgetShard struct {
	mu   sync.Mutex
	used map[uint64]spent
	_    [40]byte // keep shards on separate cache lines
}

// spent is what a key spent in one window.
type spent struct {
	window int64 // window number since the epoch
	tokens uint64
}

// NewBudgets returns budgets of tokens per window for at most maxKeys keys.
func NewBudgets(tokens uint64, window time.Duration, maxKeys int) *Budgets {
	b := &Budgets{
		tokens:   tokens,
		window:   window,
		perShard: max(1, (maxKeys+budgetShards-1)/budgetShards),
		seed:     maphash.MakeSeed(),
		now:      time.Now,
	}
	for i := range b.shards {
		b.shards[i].used = make(map[uint64]spent)
	}
	return b
}

// Key hashes a client identifier (such as an API key header value) into a
// budget key. The identifier itself is not kept.
func (b *Budgets) Key(id string) uint64 {
	return maphash.String(b.seed, id)
}

// Check reports whether key may send a request now, and if not, how long
// until its budget renews.
func (b *Budgets) Check(key uint64) (ok bool, retryAfter time.Duration) {
	now := b.now()
	w := b.windowOf(now)
	s := b.shard(key)
	s.mu.Lock()
	e := s.used[key]
	s.mu.Unlock()
	if e.window != w || e.tokens < b.tokens {
		return true, 0
	}
	return false, time.Duration(w+1)*b.window - time.Duration(now.UnixNano())
}

// Charge adds tokens to what key spent in the current window.
func (b *Budgets) Charge(key uint64, tokens uint64) {
	w := b.windowOf(b.now())
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.used[key]
	if !ok && len(s.used) >= b.perShard {
		s.evict(w)
	}
	if e.window != w {
		e = spent{window: w}
	}
	e.tokens = satAdd(e.tokens, tokens)
	s.used[key] = e
}

// evict makes room for one key: it drops every entry of a past window, or,
// when all are current, the one that spent least (the cheapest to forget).
func (s *budgetShard) evict(current int64) {
	freed := false
	var victim uint64
	least := ^uint64(0)
	for k, e := range s.used {
		switch {
		case e.window != current:
			delete(s.used, k)
			freed = true
		case e.tokens <= least:
			victim, least = k, e.tokens
		}
	}
	if !freed {
		delete(s.used, victim)
	}
}

func (b *Budgets) windowOf(t time.Time) int64 {
	return t.UnixNano() / int64(b.window)
}

func (b *Budgets) shard(key uint64) *budgetShard {
	return &b.shards[key%budgetShards]
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}
