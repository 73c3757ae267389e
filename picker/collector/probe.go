package collector

import (
	"sync"
	"time"
)

// probeState is a target's pick-time probes: the callbacks waiting for a
// scrape that ends after they asked. One scrape answers every probe that
// arrived while it was due or in flight, so a target has at most one probe
// scrape in flight, however many picks want it (joined, not repeated).
type probeState struct {
	mu      sync.Mutex
	waiters []func()
	stopped bool        // released: no scrape follows, Probe refuses
	timer   *time.Timer // the goroutine path's schedule (run); nil on the loop
}

// Probe asks for the endpoint's metrics now, for a pick that wants them
// fresh (late binding): when the latest sample is younger than maxAge, or
// the target cannot scrape (a manual collector, released), it does nothing
// and returns false. Otherwise it starts a scrape out of schedule, or joins
// the one due or in flight, and returns true: done is then called exactly
// once, on the collector's goroutine, when that scrape has ended and its
// result (sample or error) is published, or when the target is released.
// done must not block. The scrape counts as the target's scheduled one:
// the next starts an interval after it.
//
// wait is how long the pick waits for the answer at most (0: no bound).
// A pick must not wait for a scrape that cannot answer in time, so with a
// bound Probe also refuses (returns false, counted as skipped) when the
// target's last scrape failed or took longer than wait, until a scrape
// answers within it again, and when the scrape in flight started wait ago
// or more: a /metrics that hangs or crawls costs each pick nothing, not a
// timeout each.
func (t *Target) Probe(maxAge, wait time.Duration, done func()) bool {
	if t.c.manual {
		return false
	}
	now := Now()
	if s := t.sample.Load(); s != nil && now-s.At < int64(maxAge) {
		return false
	}
	if wait > 0 {
		t.probeWait.Store(int64(wait))
		if t.probeSlow.Load() {
			t.probeSkips.Add(1)
			return false
		}
		if since := t.scrapingSince.Load(); since != 0 && now-since >= int64(wait) {
			t.probeSkips.Add(1)
			return false
		}
	}
	p := &t.probe
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false
	}
	p.waiters = append(p.waiters, done)
	first := len(p.waiters) == 1
	if first && p.timer != nil {
		p.timer.Reset(0) // the goroutine path: scrape now (run reschedules after it)
	}
	p.mu.Unlock()
	t.probes.Add(1)
	if first {
		if l := t.loop.l; l != nil && t.loop.sync == nil {
			// Started now unless a scrape is queued or in flight, whose
			// end answers it.
			l.post(loopCmd{kind: cmdScrape, lc: t.loop.conn})
		}
	}
	return true
}

// scrapeTimed notes a scrape that started at start and ended now with err:
// whether the next probes should wait for this server (Probe's wait).
func (t *Target) scrapeTimed(start int64, err error) {
	t.scrapingSince.CompareAndSwap(start, 0)
	if wait := t.probeWait.Load(); wait > 0 {
		t.probeSlow.Store(err != nil || Now()-start > wait)
	}
}

// probed tells the probes waiting that a scrape ended; stop marks the
// target released. The goroutine path's run reschedules under the lock
// (resched), so a probe that arrives after it gets its own scrape.
func (t *Target) probed(stop bool, resched func()) {
	p := &t.probe
	p.mu.Lock()
	if resched != nil {
		resched()
	}
	w := p.waiters
	p.waiters = nil
	if stop {
		p.stopped, p.timer = true, nil
	}
	p.mu.Unlock()
	for _, f := range w {
		f()
	}
}

// setProbeTimer lets Probe fire the goroutine path's schedule.
func (t *Target) setProbeTimer(tm *time.Timer) {
	t.probe.mu.Lock()
	if !t.probe.stopped {
		t.probe.timer = tm
		if len(t.probe.waiters) > 0 { // asked for before the schedule existed
			tm.Reset(0)
		}
	}
	t.probe.mu.Unlock()
}
