package picker

import (
	"time"
)

// ProbeConfig is pick-time probing (late binding): before a request is
// sent, the first endpoints of its pick's list are scraped now and the
// request is picked again on their answers. It is the pool's own section,
// defaulted and checked here. On by default unless the pool gossips; a
// proxy that looks alone does not probe (README.md, "Probing at pick
// time", says why).
type ProbeConfig struct {
	Enabled    *bool     `json:"enabled,omitempty"` // nil: on, off with scrape.fleet.gossip
	Candidates int       `json:"candidates,omitempty"`
	MaxAge     *Duration `json:"maxAge,omitempty"`
	Timeout    Duration  `json:"timeout,omitzero"`
	// WhenAlone probes also when the pool's fleet estimate says this proxy
	// is the only one sending to its servers (nothing to gain there).
	WhenAlone bool `json:"whenAlone,omitempty"`
}

// Probing defaults and limits. README.md explains each.
const (
	DefaultProbeCandidates = 3
	DefaultProbeMaxAge     = 20 * time.Millisecond
	DefaultProbeTimeout    = 10 * time.Millisecond
	maxProbeCandidates     = 8
	minProbeTimeout        = time.Millisecond
	maxProbeTimeout        = time.Second
	maxProbeMaxAge         = 10 * time.Second
	// aloneShare: a fleet share below this (from the estimate, or
	// scrape.fleet.proxies) means no other proxy sends to the servers.
	aloneShare = 1.5
)

// SetDefaults implements framework.Params.
func (c *ProbeConfig) SetDefaults() {
	if c.Candidates == 0 {
		c.Candidates = DefaultProbeCandidates
	}
	if c.MaxAge == nil {
		d := Duration(DefaultProbeMaxAge)
		c.MaxAge = &d
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultProbeTimeout)
	}
}

// Validate implements framework.Params.
func (c *ProbeConfig) Validate(report func(field, msg string)) {
	if c.Candidates < 1 || c.Candidates > maxProbeCandidates {
		report("candidates", "must be in 1..8")
	}
	if c.MaxAge != nil && (*c.MaxAge < 0 || c.MaxAge.D() > maxProbeMaxAge) {
		report("maxAge", "must be in 0s..10s")
	}
	if c.Timeout.D() < minProbeTimeout || c.Timeout.D() > maxProbeTimeout {
		report("timeout", "must be in 1ms..1s")
	}
}

// probing is a pool's probe settings; enabled false: no probing.
type probing struct {
	enabled    bool
	candidates int
	maxAge     time.Duration
	timeout    time.Duration
	whenAlone  bool
}

// newProbing is the pool's probing. Left unset, it is on, but off for a
// pool that gossips: with the peers' requests in flight counted, probing
// measured worse than gossip alone (README.md, Round 6).
func newProbing(c *ProbeConfig, gossip bool) probing {
	on := !gossip
	if c.Enabled != nil {
		on = *c.Enabled
	}
	if !on {
		return probing{}
	}
	d := *c // defaulted here too: a section that skipped SetDefaults
	d.SetDefaults()
	return probing{enabled: true, candidates: d.Candidates, maxAge: d.MaxAge.D(), timeout: d.Timeout.D(), whenAlone: d.WhenAlone}
}

// ProbeTimeout is how long a probed pick waits for its probes at most
// before it picks again on what it has; 0 when probing is off or does not
// apply now (a lone proxy without whenAlone): then Probe starts nothing.
func (p *Pool) ProbeTimeout() time.Duration {
	if !p.probe.enabled || (!p.probe.whenAlone && p.alone()) {
		return 0
	}
	return p.probe.timeout
}

// alone reports whether this proxy seems the only one sending to the
// pool's servers: scrape.fleet.proxies is 1, or, left out, the fleet
// estimate is about 1 and no gossip is configured (with gossip, the peers
// are there by configuration).
func (p *Pool) alone() bool {
	if p.proxies > 0 {
		return p.proxies < aloneShare
	}
	if p.gossip != nil {
		return false
	}
	return p.fleet.value() < aloneShare
}

// Probe starts the pick-time probes of req: a dry pick (one that leaves no
// trace: no in-flight count, no counter, nothing a plugin learns), then a
// probe of the first `candidates` endpoints of its list whose metrics are
// older than maxAge (collector.Target.Probe: joined when one is in flight).
// It returns how many probes it started, each of which calls done exactly
// once, on the collector's goroutine, when its scrape has ended; and the
// dry pick's first endpoint ("" when none), to tell whether the pick after
// the probes changed its mind. It starts none when probing is off, the
// proxy is alone (unless whenAlone), or the dry pick has no list. The
// caller then calls Pick as always, after the probes or the timeout
// (ProbeTimeout).
func (p *Pool) Probe(req *Request, done func()) (started int, first string) {
	if !p.probe.enabled || (!p.probe.whenAlone && p.alone()) {
		return 0, ""
	}
	var res Result
	v := p.pick(req, &res, true)
	if res.Status != StatusOK || res.n == 0 {
		return 0, ""
	}
	first = res.eps[0]
	for _, i := range res.members[:min(res.n, p.probe.candidates)] {
		if v.members[i].target.Probe(p.probe.maxAge, p.probe.timeout, done) {
			started++
		}
	}
	if started > 0 {
		p.probes.Add(1)
	}
	return started, first
}
