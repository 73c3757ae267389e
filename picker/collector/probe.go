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
func (t *Target) Probe(maxAge time.Duration, done func()) bool {
	if t.c.manual {
		return false
	}
	if s := t.sample.Load(); s != nil && Now()-s.At < int64(maxAge) {
		return false
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
