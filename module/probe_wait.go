package main

import (
	"sync/atomic"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// Pick-time probing (picker.Pool.Probe, picker/README.md "Probing at pick
// time"): the stream stops, the collector scrapes the first endpoints of a
// dry pick's list, and the stream resumes from the SDK's scheduler, on its
// worker thread, once every probe answered or the pool's probe timeout
// fired, whichever is first, exactly once. Then it is picked as without
// probing, on the fresh metrics.

// probeTicket is one stream's wait. The collector's goroutines and the
// timer touch only the ticket and the stream's scheduler (kept alive by the
// ticket), never the filter: the filter is pooled and may serve another
// stream by the time a late probe answers. Envoy drops a scheduled event of
// a filter already destroyed; resume checks the ticket anyway.
type probeTicket struct {
	// left: probes not answered yet, plus one held by the hook that
	// started them until it knows how many it started.
	left     atomic.Int32
	fired    atomic.Bool
	timedOut atomic.Bool
	sched    shared.Scheduler
	resume   func() // on the worker thread, behind the barrier
	timer    *time.Timer
	cfg      *pickerFilterConfig // counts a panic on the collector's goroutine
}

// answered is a probe's callback, on the collector's goroutine.
func (t *probeTicket) answered() {
	defer t.cfg.recoverAsync()
	if hook := probeAnsweredHook.Load(); hook != nil {
		(*hook)()
	}
	if t.left.Add(-1) == 0 {
		t.fire(false)
	}
}

// started gives up the starter's hold once n probes are out; it reports
// false when all of them answered already (nothing is scheduled then: the
// caller picks at once), true when the last answer or the timeout will
// schedule the resumption.
func (t *probeTicket) started(n int) bool {
	return t.left.Add(int32(n)-probeHold) != 0 || t.fired.Swap(true)
}

// fire schedules the resumption, once.
func (t *probeTicket) fire(timeout bool) {
	if t.fired.Swap(true) {
		return
	}
	t.timedOut.Store(timeout)
	t.sched.Schedule(t.resume)
}

// recoverAsync counts a panic on a goroutine of ours (the collector's, a
// timer's) as the filter's panics counter does, for the next stream to
// publish: it must not reach the collector's loop or end the process.
func (c *pickerFilterConfig) recoverAsync() {
	if r := recover(); r != nil {
		c.asyncPanics.Add(1)
	}
}

// probeAnsweredHook, when set, runs first in every probe's callback: the
// test build's debug.panicIn "probe" makes it panic there.
var probeAnsweredHook atomic.Pointer[func()]

// probeHold is what the starting hook holds of probeTicket.left until it
// knows how many probes it started: no callback can reach 0 before.
const probeHold = 1 << 30

// startProbes starts the probes of f's request when its pool probes. It
// reports true when the stream now waits for them (the hook stops it),
// false when nothing was probed or every probe answered already: then
// the caller picks at once.
func (f *endpointPickerFilter) startProbes() bool {
	timeout := f.pool.ProbeTimeout()
	if timeout == 0 {
		return false
	}
	t := &probeTicket{cfg: f.cfg}
	t.left.Store(probeHold)
	n, first := f.pool.Probe(&f.req, t.answered)
	if n == 0 {
		return false
	}
	// No answer schedules anything before started gives up the hold:
	// the scheduler and the resumption are set in time. resume runs on
	// this thread after the hook returns, and finds its ticket.
	t.sched = f.h.GetScheduler()
	t.resume = func() { f.resume(t) }
	if b := f.cfg.barrier; b != nil {
		t.resume = b.GuardScheduled(f.h, t.resume)
	}
	f.probe = t
	f.tags[0] = f.pool.Name()
	f.h.IncrementCounterValue(f.cfg.probes, 1, f.tags[:1]...)
	f.probeFirst = first
	if !t.started(n) {
		f.probe = nil
		return false // every probe answered while they were started
	}
	f.waiting = true
	t.timer = time.AfterFunc(timeout, func() {
		defer t.cfg.recoverAsync()
		t.fire(true)
	})
	return true
}

// resume picks the waiting stream after its probes, on its worker thread,
// and lets it go on unless the pick answered it.
func (f *endpointPickerFilter) resume(t *probeTicket) {
	if f.probe != t {
		return // not this stream's filter any more
	}
	t.timer.Stop()
	f.probe, f.waiting = nil, false
	if t.timedOut.Load() {
		f.tags[0] = f.pool.Name()
		f.h.IncrementCounterValue(f.cfg.probeTimeouts, 1, f.tags[:1]...)
	}
	if f.pickNow(f.h.RequestHeaders()) {
		f.h.ContinueRequest()
	}
}
