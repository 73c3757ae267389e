package transform

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for Budgets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newTestBudgets(tokens uint64, window time.Duration, maxKeys int) (*Budgets, *fakeClock) {
	b := NewBudgets(tokens, window, maxKeys)
	clock := &fakeClock{t: time.Unix(1_700_000_040, 0)} // a whole minute since the epoch
	b.now = clock.now
	return b, clock
}

func TestBudgetsWindow(t *testing.T) {
	b, clock := newTestBudgets(100, time.Minute, 10)
	start := clock.now()
	alice, bob := b.Key("sk-alice"), b.Key("sk-bob")
	require.NotEqual(t, alice, bob)
	require.Equal(t, alice, b.Key("sk-alice"))

	steps := []struct {
		name      string
		at        time.Duration // since start
		charge    uint64        // alice's charge before the check
		ok        bool
		retryWait time.Duration
	}{
		{"fresh", 0, 0, true, 0},
		{"under budget", 10 * time.Second, 99, true, 0},
		{"last request may overshoot", 20 * time.Second, 0, true, 0},
		{"spent", 30 * time.Second, 50, false, 30 * time.Second},
		{"still spent", 59*time.Second + 500*time.Millisecond, 0, false, 500 * time.Millisecond},
		{"next window", time.Minute, 0, true, 0},
		{"spent again", 61 * time.Second, 100, false, 59 * time.Second},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock.set(start.Add(s.at))
			if s.charge > 0 {
				b.Charge(alice, s.charge)
			}
			ok, wait := b.Check(alice)
			require.Equal(t, s.ok, ok)
			require.Equal(t, s.retryWait, wait)
			ok, _ = b.Check(bob)
			require.True(t, ok, "bob's budget is his own")
		})
	}
}

func TestBudgetsWindowsAreAligned(t *testing.T) {
	b, clock := newTestBudgets(10, time.Hour, 10)
	clock.set(time.Date(2026, 3, 1, 10, 59, 0, 0, time.UTC))
	k := b.Key("k")
	b.Charge(k, 10)
	ok, wait := b.Check(k)
	require.False(t, ok)
	require.Equal(t, time.Minute, wait)
	require.Equal(t, "60", RetryAfter(wait))
	clock.set(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC))
	ok, _ = b.Check(k)
	require.True(t, ok)
}

func TestBudgetsBoundedMemory(t *testing.T) {
	b, clock := newTestBudgets(100, time.Minute, 2*budgetShards)
	size := func() int {
		n := 0
		for i := range b.shards {
			n += len(b.shards[i].used)
		}
		return n
	}
	for i := range uint64(10_000) {
		b.Charge(i, 1)
	}
	require.LessOrEqual(t, size(), 2*budgetShards)

	// A heavy spender survives a flood of light keys in its shard.
	heavy := uint64(7)
	b.Charge(heavy, 100)
	for i := range uint64(1000) {
		b.Charge(heavy+budgetShards*(i+1), 1)
	}
	ok, _ := b.Check(heavy)
	require.False(t, ok)

	// Past windows go first.
	clock.set(clock.now().Add(time.Minute))
	b.Charge(heavy+budgetShards, 1)
	require.Equal(t, 1, len(b.shards[heavy%budgetShards].used))
}

func TestBudgetsConcurrent(t *testing.T) {
	b, _ := newTestBudgets(1_000_000, time.Hour, 100)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				k := uint64(i % 50)
				b.Check(k)
				b.Charge(k, uint64(w+1))
			}
		}()
	}
	wg.Wait()
	var total uint64
	for i := range b.shards {
		for _, e := range b.shards[i].used {
			total += e.tokens
		}
	}
	require.Equal(t, uint64(1000*(1+2+3+4+5+6+7+8)), total)
}

func TestBudgetExhaustedReply(t *testing.T) {
	e := BudgetExhausted(1500 * time.Millisecond)
	require.Equal(t, 429, e.Status)
	require.Equal(t, `{"error":{"message":"token budget exhausted; retry in 2s","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`, string(e.Body()))
	require.Equal(t, "1", RetryAfter(0))
	require.Equal(t, "1", RetryAfter(time.Second))
	require.Equal(t, "2", RetryAfter(time.Second+1))
}

func TestSaturatingAdd(t *testing.T) {
	require.Equal(t, uint64(5), satAdd(2, 3))
	require.Equal(t, ^uint64(0), satAdd(^uint64(0)-1, 3))
}

func TestBudgetsReserve(t *testing.T) {
	b, clock := newTestBudgets(100, time.Minute, 10)
	start := clock.now()
	k := b.Key("k")

	r1, ok, _ := b.Reserve(k, 60)
	require.True(t, ok)
	require.Equal(t, uint64(60), r1.Tokens())
	_, ok, wait := b.Reserve(k, 50)
	require.False(t, ok, "60 reserved + 50 > 100")
	require.Equal(t, time.Second, wait, "room frees when the request in flight settles")
	r2, ok, _ := b.Reserve(k, 40)
	require.True(t, ok, "60 + 40 fits exactly")

	b.Settle(r1, 10) // used 10 of its 60
	r3, ok, _ := b.Reserve(k, 50)
	require.True(t, ok, "10 spent + 40 reserved + 50 fits")
	b.Settle(r2, 40)
	b.Settle(r3, 50)
	_, ok, wait = b.Reserve(k, 1)
	require.False(t, ok, "100 spent")
	require.Equal(t, time.Minute, wait)
	ok, _ = b.Check(k)
	require.False(t, ok)

	// A new window: an idle key may always send one request, even one
	// estimated over the whole budget; then nothing else fits.
	clock.set(start.Add(time.Minute))
	big, ok, _ := b.Reserve(k, 500)
	require.True(t, ok)
	_, ok, wait = b.Reserve(k, 1)
	require.False(t, ok)
	require.Equal(t, time.Second, wait, "nothing is spent yet: it may fit once the big one settles")
	b.Settle(big, 0) // refunded whole: it cost nothing
	small, ok, _ := b.Reserve(k, 100)
	require.True(t, ok)

	// A reservation from an earlier window settles into the current one
	// without refunding anything there.
	clock.set(start.Add(2 * time.Minute))
	cur, ok, _ := b.Reserve(k, 30)
	require.True(t, ok)
	b.Settle(small, 20)
	s := b.shard(k)
	require.Equal(t, spent{window: b.windowOf(clock.now()), tokens: 20, reserved: 30}, s.used[k])
	b.Settle(cur, 5)
	require.Equal(t, spent{window: b.windowOf(clock.now()), tokens: 25}, s.used[k])

	// Charge is a settle without a reservation.
	b.Charge(k, 5)
	require.Equal(t, uint64(30), s.used[k].tokens)
}

// Concurrent requests of one key never overshoot: every request that got a
// reservation uses what it reserved, and the spent total stays within the
// budget. Run with -race.
func TestBudgetsReserveConcurrent(t *testing.T) {
	b, _ := newTestBudgets(10_000, time.Hour, 100)
	const workers, perWorker, cost = 8, 2000, 7
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				k := uint64(i % 3)
				r, ok, _ := b.Reserve(k, cost)
				if !ok {
					continue
				}
				mu.Lock()
				admitted++
				mu.Unlock()
				b.Settle(r, cost)
			}
		}()
	}
	wg.Wait()
	var total uint64
	for k := range uint64(3) {
		e := b.shard(k).used[k]
		require.Zero(t, e.reserved, "every reservation settled")
		require.LessOrEqual(t, e.tokens, uint64(10_000))
		require.Greater(t, e.tokens, uint64(10_000-cost), "refusals only when the budget is full")
		total += e.tokens
	}
	require.Equal(t, uint64(admitted*cost), total)
}
