// Package endpoints supplies a pool's endpoint set (ip:port strings) from a
// static list, a DNS name re-resolved on an interval, or a JSON/YAML file
// reloaded when it changes. A source that fails keeps its last good set and
// counts the failure.
package endpoints

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Source produces endpoint sets. Start it once; Close stops it.
type Source struct {
	kind     string
	interval time.Duration // 0: load once
	load     func(ctx context.Context) ([]string, error)
	// async: the first load runs in the poller too, so Start never waits
	// on it (DNS: a lookup may take seconds, and Start runs on Envoy's main
	// thread while it loads the config).
	async bool

	current  atomic.Pointer[[]string]
	updates  atomic.Uint64
	failures atomic.Uint64
	lastErr  atomic.Pointer[string]

	startOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
}

func newSource(kind string, interval time.Duration, load func(context.Context) ([]string, error)) *Source {
	ctx, cancel := context.WithCancel(context.Background())
	return &Source{kind: kind, interval: interval, load: load, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// Start publishes the first set, then keeps polling in a goroutine.
// onChange is called with each new set (sorted, no duplicates), never
// concurrently. A synchronous source (static, file) loads once before Start
// returns, so a pool has its endpoints at once; an asynchronous one (DNS)
// returns at once and publishes when its first load completes: until then
// the pool has no endpoints (its failure mode decides what requests get).
func (s *Source) Start(onChange func([]string)) {
	s.startOnce.Do(func() {
		if s.async {
			go s.run(onChange, true)
			return
		}
		s.poll(onChange)
		if s.interval <= 0 {
			close(s.done)
			return
		}
		go s.run(onChange, false)
	})
}

func (s *Source) run(onChange func([]string), first bool) {
	defer close(s.done)
	if first {
		s.poll(onChange)
		if s.interval <= 0 {
			return
		}
	}
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
			s.poll(onChange)
		}
	}
}

func (s *Source) poll(onChange func([]string)) {
	set, err := s.safeLoad()
	if s.ctx.Err() != nil {
		return
	}
	if err != nil {
		s.failures.Add(1)
		msg := fmt.Sprintf("%s: %v", s.kind, err)
		s.lastErr.Store(&msg)
		return
	}
	if set == nil { // unchanged since the last load
		return
	}
	if cur := s.current.Load(); cur != nil && slices.Equal(*cur, set) {
		return
	}
	s.current.Store(&set)
	s.updates.Add(1)
	onChange(set)
}

// safeLoad is load with panics turned into errors: the poller runs inside
// Envoy, where an unrecovered panic ends the process.
func (s *Source) safeLoad() (set []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			set, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return s.load(s.ctx)
}

// Close stops polling and waits for the poller to exit.
func (s *Source) Close() {
	s.cancel()
	s.startOnce.Do(func() { close(s.done) })
	<-s.done
}

// Current returns the last good set, nil before the first success.
func (s *Source) Current() []string {
	if p := s.current.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats are a source's counters.
type Stats struct {
	Kind      string // static, dns or file
	Updates   uint64 // sets published
	Failures  uint64 // loads that failed; the last good set was kept
	LastError string
}

// Stats returns the source's counters.
func (s *Source) Stats() Stats {
	st := Stats{Kind: s.kind, Updates: s.updates.Load(), Failures: s.failures.Load()}
	if e := s.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// ParseAddr checks that s is ip:port with a literal IP (Envoy's override
// host list accepts nothing else) and returns its canonical form.
func ParseAddr(s string) (string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not ip:port", s)
	}
	if ap.Port() == 0 {
		return "", fmt.Errorf("%q: port must be 1-65535", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
}

// normalize parses, sorts and deduplicates a list of addresses.
func normalize(addrs []string) ([]string, error) {
	out := make([]string, 0, len(addrs))
	for i, a := range addrs {
		c, err := ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
