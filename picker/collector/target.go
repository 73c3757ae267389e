package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// Target is one model-server endpoint as this process knows it: its latest
// scraped metrics and this proxy's live counts for it. All methods are safe
// for concurrent use.
type Target struct {
	// Read by every pick: kept together at the front, on one cache line.
	sample      atomic.Pointer[metrics.Sample] // nil: no usable metrics
	inFlight    atomic.Int64
	peers       atomic.Int64 // the fleet's other proxies' requests in flight here, as they last told us
	lastFailure atomic.Int64 // Now() of the last reported failure, 0 if none

	Addr string

	hash   uint64 // endpointHash(Addr)
	c      *Collector
	key    targetKey
	group  *group
	url    string
	refs   int // guarded by c.mu
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	picks    atomic.Uint64
	failures atomic.Uint64

	scrapes      atomic.Uint64
	scrapeErrors atomic.Uint64
	consecutive  atomic.Int64
	lastErr      atomic.Pointer[string]
	probes       atomic.Uint64 // Probe calls that waited for a scrape
	probeSkips   atomic.Uint64 // Probe calls refused: the server too slow to wait for
	// What Probe's wait bound asks of the scrapes (probe.go): the latest
	// bound, whether the last scrape missed it, the start of the one in
	// flight (0: none).
	probeWait     atomic.Int64
	probeSlow     atomic.Bool
	scrapingSince atomic.Int64

	probe probeState

	// Owned by the scrape goroutine, the event loop's goroutine (loop) or
	// Publish's caller.
	rate  sendRate
	slots slotLearner
	// startedAt is Now() at the start of the scrape whose result was
	// published last: a result of a scrape started before it is dropped.
	startedAt int64
	conn      *scrapeConn
	parser    *metrics.Parser // keeps an unchanged LoRA state without allocating
	loop      targetOnLoop
}

func newTarget(c *Collector, k targetKey, g *group) *Target {
	ctx, cancel := context.WithCancel(context.Background())
	return &Target{
		Addr:   k.addr,
		hash:   endpointHash(k.addr),
		c:      c,
		key:    k,
		group:  g,
		url:    "http://" + k.addr + k.spec.Path,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// Sample returns the latest usable metrics, or nil when there are none: never
// scraped yet, the last UnhealthyAfter scrapes failed, or the last exposition
// was garbage. Callers judge freshness from Sample.At.
func (t *Target) Sample() *metrics.Sample { return t.sample.Load() }

// Publish installs s as the latest sample, as a successful scrape would; nil
// marks the endpoint as having no usable metrics. Sample.At must be set (see
// Now). For collectors from NewManual.
func (t *Target) Publish(s *metrics.Sample) {
	if s != nil {
		s.SendRate = t.rate.observe(t.picks.Load(), s.At)
		s.LoRAHint = s.LoRA.Hint()
	}
	t.sample.Store(s)
}

// InFlight returns the requests this proxy has in flight to the endpoint.
func (t *Target) InFlight() int64 { return t.inFlight.Load() }

// Peers returns the other proxies' requests in flight to the endpoint, as
// they last told us (0 without a fleet).
func (t *Target) Peers() int64 { return t.peers.Load() }

// SetPeers sets what Peers returns.
func (t *Target) SetPeers(n int64) { t.peers.Store(n) }

// Known returns the requests in flight to the endpoint that this proxy
// knows of: its own and its peers'.
func (t *Target) Known() int64 { return t.inFlight.Load() + t.peers.Load() }

// Start counts a request sent to the endpoint.
func (t *Target) Start() {
	t.inFlight.Add(1)
	t.picks.Add(1)
}

// Finish counts the end of a request counted by Start; failed marks the
// endpoint as recently failed (5xx, reset, connect failure).
func (t *Target) Finish(failed bool) {
	t.inFlight.Add(-1)
	if failed {
		t.Fail()
	}
}

// Move re-attributes one in-flight request from t to other, for a request
// Envoy retried on another endpoint of the list.
func (t *Target) Move(other *Target) {
	t.inFlight.Add(-1)
	other.inFlight.Add(1)
}

// Fail records a failure seen on the endpoint now.
func (t *Target) Fail() {
	t.failures.Add(1)
	t.lastFailure.Store(Now())
}

// FailedWithin reports whether a failure was recorded in the window before now.
func (t *Target) FailedWithin(now int64, window time.Duration) bool {
	f := t.lastFailure.Load()
	return f != 0 && now-f < int64(window)
}

// TargetStats are one endpoint's counters.
type TargetStats struct {
	Picks               uint64 // requests started on it by this proxy
	Failures            uint64 // failures reported on it
	InFlight            int64
	PeersInFlight       int64 // the fleet's other proxies' requests in flight, from gossip
	Scrapes             uint64
	ScrapeErrors        uint64
	ConsecutiveFailures int64
	LastError           string // the latest scrape error, kept after recovery
	Probes              uint64 // pick-time probes that waited for a scrape (Probe)
	ProbesSkipped       uint64 // pick-time probes refused: the last scrape failed or missed the wait bound
}

// Stats returns the endpoint's counters.
func (t *Target) Stats() TargetStats {
	s := TargetStats{
		Picks:               t.picks.Load(),
		Failures:            t.failures.Load(),
		InFlight:            t.inFlight.Load(),
		PeersInFlight:       t.peers.Load(),
		Scrapes:             t.scrapes.Load(),
		ScrapeErrors:        t.scrapeErrors.Load(),
		ConsecutiveFailures: t.consecutive.Load(),
		Probes:              t.probes.Load(),
		ProbesSkipped:       t.probeSkips.Load(),
	}
	if e := t.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// Done is closed when the target's scraper has stopped.
func (t *Target) Done() <-chan struct{} { return t.done }

func (t *Target) run() {
	defer close(t.done)
	defer func() {
		if t.conn != nil {
			t.conn.close()
		}
	}()
	spec := &t.key.spec
	jitter := spec.Jitter
	if jitter == 0 {
		jitter = DefaultJitter
	}
	t.scrapeOnce(spec) // metrics as soon as a pool starts, then spread out
	t.probed(false, nil)
	tick := scheduleTick(spec.Interval)
	timer := time.NewTimer(untilTick(time.Now().Add(rand.N(spec.Interval)), tick))
	defer timer.Stop()
	// Releasing the target fires the timer, so the loop waits on the timer
	// alone: a channel receive per scrape, not a select. A release during a
	// scrape is seen after the Reset that would otherwise undo its firing.
	defer context.AfterFunc(t.ctx, func() { timer.Reset(0) })()
	defer t.probed(true, nil) // released: the probes waiting go on
	t.setProbeTimer(timer)
	for {
		<-timer.C
		if t.ctx.Err() != nil {
			return
		}
		// Start to start, jittered each time: a fixed period would keep
		// proxies that happen to scrape a server together in step forever.
		start := time.Now()
		t.scrapeOnce(spec)
		// Rescheduled before the probes waiting are told, under their
		// lock: a probe after it fires the timer again (Probe).
		t.probed(false, func() { timer.Reset(untilTick(start.Add(wait(spec.Interval, jitter)), tick)) })
		if t.ctx.Err() != nil {
			return
		}
	}
}

// scrapeOnce waits for a concurrency slot, scrapes and publishes the result.
// Targets of the event loop (loop_linux.go) scrape through it and wait.
func (t *Target) scrapeOnce(spec *Spec) {
	if l := t.c.eventLoop(); l != nil {
		t.scrapeOnceOnLoop(l)
		return
	}
	select {
	case t.group.sem <- struct{}{}: // a free slot: no select over two channels
	default:
		select {
		case t.group.sem <- struct{}{}:
		case <-t.ctx.Done():
			return
		}
	}
	defer func() { <-t.group.sem }()

	start := Now()
	inFlight := t.begin(start)
	s, err := t.safeFetch(spec)
	t.publish(spec, inFlight, start, s, err)
}

// begin counts a scrape that starts at now and returns the requests in
// flight to the endpoint at its start.
func (t *Target) begin(now int64) int64 {
	t.scrapingSince.Store(now)
	t.scrapes.Add(1)
	t.c.scrapes.Add(1)
	return t.Known()
}

// publish installs the result of a scrape started at start: its sample, or
// its error. A scrape started before the one published last is dropped: a
// sample is never replaced by an older view of the server.
func (t *Target) publish(spec *Spec, inFlight, start int64, s *metrics.Sample, err error) {
	t.scrapeTimed(start, err)
	if start < t.startedAt {
		return
	}
	t.startedAt = start
	if err == nil {
		s.At = Now()
		s.InFlightAtScrape = inFlight
		s.PeakRunning = t.slots.observe(s, relearnScrapes(spec.Interval))
		s.SendRate = t.rate.observe(t.picks.Load(), s.At)
		s.LoRAHint = s.LoRA.Hint()
		t.sample.Store(s)
		t.consecutive.Store(0)
		return
	}
	if t.ctx.Err() != nil {
		return // released while scraping: not the endpoint's fault
	}
	t.scrapeErrors.Add(1)
	t.c.scrapeErrors.Add(1)
	msg := err.Error()
	t.lastErr.Store(&msg)
	n := t.consecutive.Add(1)
	var bad *badMetricsError
	if errors.As(err, &bad) || n >= int64(spec.UnhealthyAfter) {
		t.sample.Store(nil) // never keep serving old numbers from a broken endpoint
	}
	if n >= int64(spec.UnhealthyAfter) {
		t.slots.forget() // down for a while: it may come back as another server
	}
}

// badMetricsError is an exposition that arrived but cannot be used.
type badMetricsError struct{ err error }

func (e *badMetricsError) Error() string { return e.err.Error() }
func (e *badMetricsError) Unwrap() error { return e.err }

// safeFetch is fetch with panics turned into errors: this goroutine runs
// inside Envoy, where an unrecovered panic ends the process.
func (t *Target) safeFetch(spec *Spec) (s *metrics.Sample, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, &badMetricsError{fmt.Errorf("scrape panic: %v", r)}
		}
	}()
	return t.fetch(spec)
}

type scratch struct {
	body   bytes.Buffer
	parser *metrics.Parser
}

var scratchPool = sync.Pool{New: func() any { return &scratch{parser: metrics.NewParser()} }}

// initialBuffer holds a whole vLLM exposition (55 KB) in one read.
const initialBuffer = 64 << 10

// maxPooledBuffer: a larger response buffer is not kept for reuse.
const maxPooledBuffer = 1 << 20

func (t *Target) fetch(spec *Spec) (*metrics.Sample, error) {
	if t.c.client != nil {
		return t.fetchNetHTTP(spec)
	}
	if t.conn == nil {
		t.conn = newScrapeConn(t.ctx, t.key.addr, spec.Path)
	}
	var buf []byte
	select {
	case buf = <-t.group.bufs:
	default:
		buf = make([]byte, 0, initialBuffer)
	}
	defer func() {
		if cap(buf) <= maxPooledBuffer {
			select {
			case t.group.bufs <- buf[:0]:
			default:
			}
		}
	}()
	body, status, err := t.conn.get(&buf, spec.Timeout, spec.MaxBytes)
	if t.parser == nil {
		t.parser = metrics.NewParser()
	}
	return fromResponse(t.parser, spec, body, status, err)
}

// fromResponse turns a response (or the error that ended it) into a sample.
func fromResponse(parser *metrics.Parser, spec *Spec, body []byte, status int, err error) (*metrics.Sample, error) {
	if err != nil && !errors.Is(err, errTooLarge) {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP status %d", status)
	}
	if err != nil || int64(len(body)) > spec.MaxBytes {
		return nil, &badMetricsError{fmt.Errorf("metrics: exposition larger than %d bytes", spec.MaxBytes)}
	}
	s, err := parser.Parse(body, &spec.Names)
	if err != nil {
		return nil, &badMetricsError{err}
	}
	return &s, nil
}

// fetchNetHTTP scrapes through the http.Client given to New.
func (t *Target) fetchNetHTTP(spec *Spec) (*metrics.Sample, error) {
	ctx, cancel := context.WithTimeout(t.ctx, spec.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := t.c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.body.Reset()
	_, err = sc.body.ReadFrom(io.LimitReader(resp.Body, spec.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP status %d", resp.StatusCode)
	}
	if int64(sc.body.Len()) > spec.MaxBytes {
		return nil, &badMetricsError{fmt.Errorf("metrics: exposition larger than %d bytes", spec.MaxBytes)}
	}
	s, err := sc.parser.Parse(sc.body.Bytes(), &spec.Names)
	if err != nil {
		return nil, &badMetricsError{err}
	}
	return &s, nil
}
