package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// The event loop's side that does not depend on the OS: what a connection
// on the loop is, and how a Target uses one. The loop itself (epoll) is in
// loop_linux.go; elsewhere there is none and every target has its own
// goroutine and scrapeConn.

// loopOwner is told of a loopConn's scrapes, on the loop's goroutine.
type loopOwner interface {
	// scrapeStarted: the scrape got its concurrency slot and starts now.
	scrapeStarted()
	// scrapeDone: the scrape ended. body is valid only during the call.
	scrapeDone(body []byte, status int, err error)
	// scrapeStopped: the connection's context ended; no scrape follows.
	scrapeStopped()
}

// loopConn is one target's keep-alive connection on the event loop, with
// the same behaviour as scrapeConn: one request built once, a response
// with Content-Length, chunked or to the close, the per-scrape timeout
// (connecting included), a size limit, one retry on a kept-alive
// connection the server closed, and the context ending a scrape at once.
type loopConn struct {
	// Set at creation, read-only after.
	addr     string
	request  []byte
	ctx      context.Context
	dialer   net.Dialer
	timeout  time.Duration
	maxBytes int64
	lim      *limiter // nil: no bound
	owner    loopOwner

	// Owned by the loop's goroutine.
	fd       int // -1: not connected
	reused   bool
	fresh    bool // connected for this attempt
	state    connState
	attempt  int
	deadline int64 // Now() at which the scrape times out
	wrote    int
	wantOut  bool   // registered for writability (a write was cut short)
	raw      []byte // a response not complete yet; nil when none
	want     int    // raw's length before a new parse is worth it
	seq      uint64 // dial attempts: a late dial result is dropped
	due      int64  // Now() of the next scheduled scrape
	heapIdx  int    // in the loop's schedule; -1 when not
	activeAt int    // in the loop's active list; -1 when not
	dead     bool   // stopped: no more scrapes
	watched  bool   // the end of ctx stops it (set at its first scrape)
}

type connState uint8

const (
	connIdle    connState = iota
	connQueued            // waiting for a concurrency slot
	connDialing           // a goroutine is connecting
	connWriting           // request partly written
	connReading           // waiting for the response
)

func newLoopConn(ctx context.Context, addr, path string, timeout time.Duration, maxBytes int64, lim *limiter, owner loopOwner) *loopConn {
	return &loopConn{
		addr: addr, request: scrapeRequest(addr, path), ctx: ctx, dialer: newDialer(),
		timeout: timeout, maxBytes: maxBytes, lim: lim, owner: owner,
		fd: -1, heapIdx: -1, activeAt: -1,
	}
}

// limiter bounds the scrapes in flight at once on the loop for one group
// (Spec.Concurrency), as group.sem does for goroutines. Loop-owned.
type limiter struct {
	max     int
	n       int
	waiting []*loopConn
}

// errNeedMore: the loop's reader has no more bytes yet.
var errNeedMore = errors.New("need more bytes")

// sliceReader hands readResponse what has arrived so far: the loop parses a
// response again from its start whenever enough more has arrived (want),
// which for the usual answer in one read is once.
type sliceReader struct {
	data []byte
	off  int
	eof  bool // the peer closed after data
	want int  // set by readResponse: total bytes needed to move on
}

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		if r.eof {
			return 0, io.EOF
		}
		return 0, errNeedMore
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

// arrived parses a response from the bytes of it arrived so far (eof: the
// server closed after them) into *parseBuf. When they do not hold all of it
// yet, err is errNeedMore and want is the length they must reach before
// parsing again is worth it (the rest of a body whose length is known).
func arrived(r *sliceReader, data []byte, eof bool, parseBuf *[]byte, maxBytes int64) (body []byte, status int, keep bool, got, want int, err error) {
	*r = sliceReader{data: data, eof: eof}
	body, status, keep, got, err = readResponse(r, parseBuf, maxBytes)
	if err == errNeedMore {
		want = max(r.want, len(data)+1)
	}
	r.data = nil
	return body, status, keep, got, want, err
}

// targetOnLoop is a Target's state on the event loop, owned by the loop's
// goroutine (and scrapeOnce's caller while it waits).
type targetOnLoop struct {
	l         *eventLoop
	conn      *loopConn
	sync      chan struct{} // scrapeOnce waits on it; nil for scheduled targets
	inFlight  int64         // requests in flight at the scrape's start
	start     int64         // Now() of the scrape's start
	scheduled bool          // the first scheduled scrape is done
	lora      metrics.LoRAMemo
}

// startOnLoop puts t on the loop's schedule: a scrape now, then every
// (jittered) interval, on the tick grid, as run does with a goroutine.
func (t *Target) startOnLoop(l *eventLoop) {
	t.loop.l, t.loop.conn = l, t.newLoopConn()
	l.post(loopCmd{kind: cmdScrape, lc: t.loop.conn})
}

func (t *Target) newLoopConn() *loopConn {
	spec := &t.key.spec
	g := t.group
	if g.lim.max == 0 {
		g.lim.max = max(cap(g.sem), 1)
	}
	return newLoopConn(t.ctx, t.key.addr, spec.Path, spec.Timeout, spec.MaxBytes, &g.lim, t)
}

// scrapeOnceOnLoop runs one scrape through the loop and waits for it (for
// targets that are not scheduled: tests drive them).
func (t *Target) scrapeOnceOnLoop(l *eventLoop) {
	if t.loop.conn == nil {
		t.loop.sync = make(chan struct{}, 1)
		t.loop.l, t.loop.conn = l, t.newLoopConn()
	}
	l.post(loopCmd{kind: cmdScrape, lc: t.loop.conn})
	select {
	case <-t.loop.sync:
	case <-t.done: // released while waiting for a slot
	}
}

func (t *Target) scrapeStarted() {
	t.loop.start = Now()
	t.loop.inFlight = t.begin(t.loop.start)
}

func (t *Target) scrapeDone(body []byte, status int, err error) {
	spec := &t.key.spec
	s, err := t.safeResponse(spec, body, status, err)
	t.publish(spec, t.loop.inFlight, t.loop.start, s, err)
	t.probed(false, nil)
	lc := t.loop.conn
	if t.loop.sync != nil {
		t.loop.sync <- struct{}{}
		return
	}
	if lc.dead {
		return
	}
	// Start to start, jittered, on the tick grid (see run).
	next := t.loop.start
	if !t.loop.scheduled {
		t.loop.scheduled = true
		next += int64(rand.N(spec.Interval))
	} else {
		jitter := spec.Jitter
		if jitter == 0 {
			jitter = DefaultJitter
		}
		next += int64(wait(spec.Interval, jitter))
	}
	t.loop.l.schedule(lc, max(int64(onTick(time.Duration(next), scheduleTick(spec.Interval))), Now()))
}

func (t *Target) scrapeStopped() {
	t.probed(true, nil)
	if t.loop.sync == nil {
		close(t.done)
	}
}

// safeResponse is fromResponse with panics turned into errors: the loop
// runs inside Envoy, where an unrecovered panic ends the process.
func (t *Target) safeResponse(spec *Spec, body []byte, status int, err error) (s *metrics.Sample, rerr error) {
	defer func() {
		if r := recover(); r != nil {
			s, rerr = nil, &badMetricsError{fmt.Errorf("scrape panic: %v", r)}
		}
	}()
	g := t.group
	if g.parser == nil {
		g.parser = metrics.NewParser()
	}
	g.parser.SwapLoRA(&t.loop.lora) // the target's LoRA state, not the last target's
	defer g.parser.SwapLoRA(&t.loop.lora)
	return fromResponse(g.parser, spec, body, status, err)
}
