// Package collector scrapes model servers' /metrics for the whole process.
//
// There is one Collector per process (Default), shared by every pool, filter
// instance and worker thread. Pools acquire a Target per endpoint and release
// it when they stop needing it; a Target is scraped by one goroutine for as
// long as anyone holds it, however many pools or config loads refer to it.
package collector

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// Spec says how to scrape an endpoint. Targets with equal address and Spec
// are the same Target. Spec is comparable.
type Spec struct {
	Path           string        // URL path, e.g. /metrics
	Interval       time.Duration // time between scrape starts (Schedule.Interval of the configured one)
	Jitter         float64       // each wait is Interval × [1-Jitter/2, 1+Jitter/2]; 0: DefaultJitter, < 0: none (Schedule.SpecJitter)
	Timeout        time.Duration // per scrape, connection included
	Concurrency    int           // scrapes in flight at once for all targets of this Spec
	UnhealthyAfter int           // consecutive failed scrapes before the metrics are dropped
	MaxBytes       int64         // a larger exposition is an error
	Names          metrics.Names
}

// Collector owns the scrape targets and the HTTP client they share.
type Collector struct {
	client *http.Client
	manual bool // targets are fed by Publish, never scraped
	// goroutines: one goroutine and scrapeConn per target even where the
	// event loop exists (tests run both paths).
	goroutines bool

	mu      sync.Mutex
	targets map[targetKey]*Target
	groups  map[Spec]*group
	byHash  map[uint64][]*Target   // by endpointHash(addr): what gossip names
	gossips map[string]*gossipNode // by listen address
	// gossipGen changes when a target appears or a gossip socket leaves:
	// the sockets then write every sum they hold again, not only the
	// changed ones (a new target starts at 0 peers; a leaving socket
	// zeroed what it wrote, which another may also have written).
	gossipGen uint64

	scrapes      atomic.Uint64
	scrapeErrors atomic.Uint64
}

type targetKey struct {
	addr string
	spec Spec
}

// group is the scrape-concurrency limit shared by the targets of one Spec.
type group struct {
	sem  chan struct{}
	bufs chan []byte // response buffers, at most one per scrape in flight: reused across GCs, unlike a sync.Pool's
	refs int
	lim  limiter // the same bound on the event loop, owned by its goroutine
	// parser parses the answers of all the group's targets on the event
	// loop (owned by its goroutine): its state stays in the cache, and
	// targets of one deployment repeat each other's label blocks, which it
	// remembers. One per Spec, so one set of Names.
	parser *metrics.Parser
}

var (
	defaultOnce      sync.Once
	defaultCollector *Collector
)

// Default returns the process-wide collector, creating it on first use.
func Default() *Collector {
	defaultOnce.Do(func() { defaultCollector = New(nil) })
	return defaultCollector
}

// New returns a collector that scrapes with client or, when client is nil,
// with its own keep-alive HTTP/1.1 connection per target (conn.go): a
// fraction of net/http's CPU per scrape.
func New(client *http.Client) *Collector {
	return &Collector{
		client:  client,
		targets: make(map[targetKey]*Target),
		groups:  make(map[Spec]*group),
		byHash:  make(map[uint64][]*Target),
	}
}

// NewManual returns a collector that never scrapes: its targets get samples
// only from Target.Publish. For tests, benchmarks and simulations.
func NewManual() *Collector {
	c := New(nil)
	c.manual = true
	return c
}

// Acquire returns the target for addr and spec, starting its scraper if no
// one held it yet. Every Acquire must be paired with one Release.
func (c *Collector) Acquire(addr string, spec Spec) *Target {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := targetKey{addr: addr, spec: spec}
	if t := c.targets[k]; t != nil {
		t.refs++
		return t
	}
	g := c.groups[spec]
	if g == nil {
		n := max(spec.Concurrency, 1)
		g = &group{sem: make(chan struct{}, n), bufs: make(chan []byte, n)}
		c.groups[spec] = g
	}
	g.refs++
	t := newTarget(c, k, g)
	t.refs = 1
	c.targets[k] = t
	c.byHash[t.hash] = append(c.byHash[t.hash], t)
	c.gossipGen++
	switch l := c.eventLoop(); {
	case c.manual:
		close(t.done)
	case l != nil:
		t.startOnLoop(l)
	default:
		go t.run()
	}
	return t
}

// eventLoop returns the loop that scrapes c's targets, or nil when each
// target has its own goroutine (net/http client, no epoll, tests).
func (c *Collector) eventLoop() *eventLoop {
	if c.client != nil || c.manual || c.goroutines {
		return nil
	}
	return theEventLoop()
}

// Release drops one reference to t; the last one stops its scraper.
func (c *Collector) Release(t *Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.refs--
	if t.refs > 0 {
		return
	}
	delete(c.targets, t.key)
	if ts := slices.DeleteFunc(c.byHash[t.hash], func(x *Target) bool { return x == t }); len(ts) > 0 {
		c.byHash[t.hash] = ts
	} else {
		delete(c.byHash, t.hash)
	}
	if t.group.refs--; t.group.refs == 0 {
		delete(c.groups, t.key.spec)
	}
	t.cancel()
}

// Stats are process-wide scrape counters.
type Stats struct {
	Targets      int    // endpoints being scraped
	Scrapes      uint64 // scrapes attempted
	ScrapeErrors uint64 // scrapes that failed or returned unusable metrics
}

// Stats returns the collector's counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	n := len(c.targets)
	c.mu.Unlock()
	return Stats{Targets: n, Scrapes: c.scrapes.Load(), ScrapeErrors: c.scrapeErrors.Load()}
}

// epoch anchors Now to the monotonic clock.
var epoch = time.Now()

// Now returns monotonic nanoseconds since the process started. Sample.At and
// failure times use it, so wall-clock steps never make metrics look fresh.
func Now() int64 { return int64(time.Since(epoch)) }
