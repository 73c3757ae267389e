package transform

import (
	"hash/maphash"
	"sync"
	"time"
)

// Budgets are local token budgets: each key may spend a number of tokens per
// fixed window of time (windows start at multiples of the window length since
// the Unix epoch). A request reserves its estimated cost when it is decided
// (Reserve) and settles its actual usage when it ends (Settle), so concurrent
// requests of a key cannot all pass before any is charged: spent plus
// reserved never exceeds the budget, except that a key with nothing spent or
// reserved may always send one request, whatever its estimate. A key whose
// requests use no more than they reserved therefore overshoots by at most
// that one request's reservation. Check is a cheap early test (before the
// body is read) of what is already spent.
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

// spent is what a key spent in one window, and what its requests in flight
// reserved in it.
type spent struct {
	window   int64 // window number since the epoch
	tokens   uint64
	reserved uint64
}

// Reservation is the tokens one request reserved. The zero value reserves
// nothing; settling it only charges.
type Reservation struct {
	key    uint64
	window int64
	tokens uint64
}

// Tokens is the number of tokens reserved.
func (r Reservation) Tokens() uint64 { return r.tokens }

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

// Reserve reserves tokens for a request of key. It fails when what the key
// spent and reserved in the current window plus tokens is over the budget
// (unless the key has nothing spent or reserved), and then says how long to
// wait: until the window ends when what is spent leaves no room, else one
// second (requests in flight will settle and may free room).
func (b *Budgets) Reserve(key uint64, tokens uint64) (r Reservation, ok bool, retryAfter time.Duration) {
	now := b.now()
	w := b.windowOf(now)
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found := s.used[key]
	if e.window != w {
		e = spent{window: w}
	}
	committed := satAdd(e.tokens, e.reserved)
	if committed > 0 && satAdd(committed, tokens) > b.tokens {
		if satAdd(e.tokens, tokens) <= b.tokens {
			return Reservation{}, false, time.Second
		}
		return Reservation{}, false, time.Duration(w+1)*b.window - time.Duration(now.UnixNano())
	}
	if !found && len(s.used) >= b.perShard {
		s.evict(w)
	}
	e.reserved = satAdd(e.reserved, tokens)
	s.used[key] = e
	return Reservation{key: key, window: w, tokens: tokens}, true, 0
}

// Settle ends a reservation: its tokens are released and the request's
// actual tokens charged to the current window. Call it exactly once per
// reservation.
func (b *Budgets) Settle(r Reservation, tokens uint64) {
	w := b.windowOf(b.now())
	s := b.shard(r.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found := s.used[r.key]
	if found && e.window == r.window {
		e.reserved = satSub(e.reserved, r.tokens)
	}
	if e.window != w {
		e = spent{window: w}
	}
	if tokens == 0 {
		if found {
			s.used[r.key] = e
		}
		return
	}
	if !found && len(s.used) >= b.perShard {
		s.evict(w)
	}
	e.tokens = satAdd(e.tokens, tokens)
	s.used[r.key] = e
}

// Charge adds tokens to what key spent in the current window, without a
// reservation.
func (b *Budgets) Charge(key uint64, tokens uint64) {
	b.Settle(Reservation{key: key}, tokens)
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
		case satAdd(e.tokens, e.reserved) <= least:
			victim, least = k, satAdd(e.tokens, e.reserved)
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

func satSub(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}
