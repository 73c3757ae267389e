package picker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/endpoints"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/scheduler"
)

// Pool is one running InferencePool: its endpoint source, its scrape
// targets, its scheduling profile and its live counts. Pick may be called
// from any number of goroutines at once.
type Pool struct {
	name       string
	failOpen   bool
	penalty    time.Duration
	staleAfter int64
	priorities map[string]int
	defaultPri int

	spec       collector.Spec
	collector  *collector.Collector
	source     *endpoints.Source
	profile    *scheduler.Profile
	saturation framework.SaturationDetector // nil when no plugin of the profile is one
	reporters  []framework.StatsReporter

	view   atomic.Pointer[view]
	cycles sync.Pool

	mu      sync.Mutex // serializes membership changes and Close
	closed  bool
	nextID  int32
	freeIDs []int32

	picks, sheds, noCapacity, noMetrics atomic.Uint64
	scrapeErrorsGone                    atomic.Uint64 // from endpoints that left

	probe  probing       // pick-time probing (probe.go)
	probes atomic.Uint64 // picks that waited for probes

	fleet   fleetShare              // how many proxies' requests the servers see per one of ours
	proxies float64                 // scrape.fleet.proxies when configured: the share, not estimated
	gossip  *collector.GossipHandle // nil: no scrape.fleet.gossip

	// Owned by the registry.
	key  string
	refs int
}

// view is an immutable endpoint list; membership changes publish a new one.
type view struct {
	members []member
	byAddr  map[string]int32
}

type member struct {
	addr   string
	key    uint64 // xxhash(addr)
	id     int32
	target *collector.Target
	// Scrape errors the target had when it joined this pool, so the pool's
	// counter only counts its own era of a shared target.
	scrapeErrorsAtJoin uint64
}

// cycleState is the per-Pick scratch, pooled.
type cycleState struct {
	req    framework.Request
	cycle  framework.Cycle
	eps    []framework.Endpoint
	held   []framework.Endpoint // penalized: used only when nothing else is left
	inHint []bool
	buf    scheduler.Buffers
	kept   keptCandidates
}

func newPool(cfg *PoolConfig, opts *options) (*Pool, error) {
	names, err := metrics.ForEngine(cfg.Engine)
	if err != nil {
		return nil, err
	}
	applyMetricOverrides(&names, &cfg.Metrics)

	p := &Pool{
		name:       cfg.Name,
		failOpen:   cfg.FailureMode == FailOpen,
		penalty:    cfg.FailurePenalty.D(),
		staleAfter: int64(cfg.Scrape.StaleAfter),
		priorities: cfg.Priorities,
		defaultPri: cfg.DefaultPriority,
		collector:  opts.collector,
		proxies:    float64(cfg.Scrape.Fleet.Proxies),
		probe:      newProbing(&cfg.Probe, cfg.Scrape.Fleet.Gossip != nil),
		spec: collector.Spec{
			Path:           scrapePath(&cfg.Scrape, &names),
			Interval:       cfg.Scrape.schedule().Interval(cfg.Scrape.Interval.D()),
			Jitter:         cfg.Scrape.schedule().SpecJitter(),
			Timeout:        cfg.Scrape.Timeout.D(),
			Concurrency:    cfg.Scrape.Concurrency,
			UnhealthyAfter: cfg.Scrape.UnhealthyAfter,
			MaxBytes:       cfg.Scrape.MaxBytes,
			Names:          names,
		},
	}
	p.view.Store(&view{byAddr: map[string]int32{}})
	p.cycles.New = func() any { return &cycleState{} }

	if p.profile, err = buildProfile(cfg); err != nil {
		return nil, err
	}
	for _, pl := range p.profile.Plugins() {
		if d, ok := pl.(framework.SaturationDetector); ok && p.saturation == nil {
			p.saturation = d
		}
		if r, ok := pl.(framework.StatsReporter); ok {
			p.reporters = append(p.reporters, r)
		}
	}

	e := &cfg.Endpoints
	switch {
	case e.Static != nil:
		p.source, err = endpoints.NewStatic(e.Static)
	case e.DNS != nil:
		p.source = endpoints.NewDNS(e.DNS.Name, e.DNS.Ports, e.DNS.Interval.D(), opts.resolver)
	case e.File != nil:
		p.source = endpoints.NewFile(e.File.Path, e.File.Interval.D())
	}
	if err != nil {
		p.closePlugins()
		return nil, err
	}
	if g := cfg.Scrape.Fleet.Gossip; g != nil {
		// The peers' requests are counted, not estimated: with gossip the
		// share observed from the scrapes is about 1, and a configured
		// proxies count would count them twice.
		p.proxies = 0
		if p.gossip, err = p.collector.JoinGossip(*g); err != nil {
			p.closePlugins()
			return nil, err
		}
	}
	p.source.Start(p.setEndpoints)
	return p, nil
}

// scrapePath is the path scraped: with filterByName (the default), asking
// the server for the families read only.
func scrapePath(s *ScrapeConfig, names *metrics.Names) string {
	if s.FilterByName != nil && !*s.FilterByName {
		return s.Path
	}
	return names.FilteredPath(s.Path)
}

func applyMetricOverrides(n *metrics.Names, m *MetricsConfig) {
	if m.Waiting != "" {
		n.Waiting = m.Waiting
	}
	if m.Running != "" {
		n.Running = m.Running
	}
	if m.KVCacheUsage != "" {
		n.KVUsage, n.KVUsageFallback = m.KVCacheUsage, ""
	}
	if m.LoRAInfo != "" {
		n.LoRAInfo = m.LoRAInfo
	}
	if m.CacheConfig != "" {
		n.CacheConfig = m.CacheConfig
	}
}

func buildProfile(cfg *PoolConfig) (*scheduler.Profile, error) {
	sc := &cfg.Scheduler
	var filters []framework.Filter
	for _, f := range sc.Filters {
		pl, err := filterFactories[f.Type](cfg)
		if err != nil {
			return nil, err
		}
		filters = append(filters, pl)
	}
	var scorers []scheduler.Weighted
	closeAll := func() {
		for _, s := range scorers {
			if c, ok := s.Scorer.(interface{ Close() }); ok {
				c.Close()
			}
		}
	}
	for _, s := range sc.Scorers {
		pl, err := scorerFactories[s.Type](cfg)
		if err != nil {
			closeAll()
			return nil, err
		}
		scorers = append(scorers, scheduler.Weighted{Scorer: pl, Weight: *s.Weight})
	}
	picker, err := pickerFactories[sc.Picker.Type](cfg)
	if err != nil {
		closeAll()
		return nil, err
	}
	return scheduler.NewProfile(filters, scorers, picker, sc.MaxEndpoints), nil
}

// Name returns the pool's configured name.
func (p *Pool) Name() string { return p.name }

// FailOpen reports whether StatusNoMetrics should pass the request on
// without a destination (true) or be answered 503 (false).
func (p *Pool) FailOpen() bool { return p.failOpen }

// Priority returns the priority of an objective name.
func (p *Pool) Priority(objective string) int {
	if objective == "" { // most requests: no map lookup (names are never empty)
		return p.defaultPri
	}
	if v, ok := p.priorities[objective]; ok {
		return v
	}
	return p.defaultPri
}

// clockNow is collector.Now; the fleet simulation (fleetsim_test.go) runs
// picks on its virtual clock.
var clockNow = collector.Now

// cycleSeed seeds each cycle's tie breaks and draws; tests replace it to
// replay picks exactly.
var cycleSeed = rand.Uint64

// Pick schedules one request and writes the answer into res. With
// StatusOK the first endpoint is counted in flight until res.Done.
// Steady state, Pick does not allocate.
func (p *Pool) Pick(req *Request, res *Result) { p.pick(req, res, false) }

// pick is Pick; dry, it only looks (Probe's first pick): no in-flight
// count, no counter, no fleet estimate, and the plugins learn nothing
// (Cycle.Dry). It returns the view res.members index.
func (p *Pool) pick(req *Request, res *Result, dry bool) *view {
	res.reset(p)
	v := p.view.Load()
	st := p.cycles.Get().(*cycleState)
	defer p.cycles.Put(st)

	now := clockNow()
	st.req = framework.Request{
		Model:    req.Model,
		ModelKey: metrics.Key(req.Model),
		Prompt:   req.Prompt,
		Priority: p.Priority(req.Objective),
	}
	st.cycle.Reset(&st.req, now, cycleSeed())
	st.cycle.Dry = dry

	if req.HasSubset && !st.markHint(v, req.Subset) {
		res.Status = StatusNoCapacity
		if !dry {
			p.noCapacity.Add(1)
		}
		return v
	}
	eps, held, load, own := p.candidates(st, v, req, now)
	if fleetEstimate && !dry {
		p.fleet.observe(load, own)
	}
	if len(eps) == 0 {
		eps = held // every candidate failed recently: better them than nothing
	}
	if len(eps) == 0 {
		if req.HasSubset && p.failOpen && !dry {
			// Envoy's fallback policy would pick outside the hint: stay
			// inside it, blind.
			p.pickInHint(v, st, res)
			return v
		}
		res.Status = StatusNoMetrics
		if !dry {
			p.noMetrics.Add(1)
		}
		return v
	}

	picked, shed := st.schedule(p.profile, eps, res.members[:0])
	if shed {
		res.Status = StatusShed
		if !dry {
			p.sheds.Add(1)
		}
		return v
	}
	for _, i := range picked {
		res.eps[res.n] = v.members[i].addr
		res.n++
	}
	if dry {
		return v
	}
	res.started = v.members[picked[0]].target
	res.started.Start()
	p.picks.Add(1)
	return v
}

// candidates builds the cycle's candidates from view v at now: those with
// usable metrics, and apart from them the penalized ones (held), with the
// scraped requests of all and ours among them for the fleet estimate.
// Candidates the last build on st wrote are kept when they still hold
// the same member's same sample (keptCandidates).
func (p *Pool) candidates(st *cycleState, v *view, req *Request, now int64) (eps, held []framework.Endpoint, load, own float64) {
	members := v.members
	if cap(st.eps) < len(members) {
		st.eps = make([]framework.Endpoint, len(members))
	}
	all := st.eps[:len(members)] // written by index: no append per endpoint
	kept := st.kept.reuse(v, len(members))
	held = st.held[:0]
	n := 0
	others := 0.0 // the other proxies' requests per one of ours
	if fleetEstimate {
		others = p.fleet.value() - 1
		if p.proxies > 0 { // configured: known, not estimated
			others = p.proxies - 1
		}
	}
	st.cycle.Others = others > 0
	penalty, staleAfter, valid := int64(p.penalty), p.staleAfter, st.kept.valid
	var inHint []bool // nil: every member
	if req.HasSubset {
		inHint = st.inHint[:len(members)]
	}
	// First pass: the candidates kept from the last pick get their live
	// numbers; the others are noted and written whole in a second pass, so
	// this loop calls nothing and keeps its values in registers.
	if cap(st.kept.todo) < len(members) {
		st.kept.todo = make([]pending, len(members))
	}
	todo := st.kept.todo[:len(members)] // written by index: no call in the loop
	nTodo := 0
	for i := range members {
		if inHint != nil && !inHint[i] {
			continue
		}
		t := members[i].target
		s := t.Sample()
		if s == nil {
			continue
		}
		// The fleet estimate's sums, in member order as always.
		if t.FailedWithin(now, time.Duration(penalty)) {
			todo[nTodo] = pending{pos: -1, member: int32(i), s: s} // held: never kept
			nTodo++
			load += s.Running + s.Waiting
			own += float64(s.InFlightAtScrape)
			continue
		}
		e, h := &all[n], &kept[n]
		if n >= valid || h.src != s || e.Member != int32(i) {
			todo[nTodo] = pending{pos: int32(n), member: int32(i), s: s}
			nTodo++
			load += s.Running + s.Waiting
			own += float64(s.InFlightAtScrape)
		} else { // e holds it from the last pick: no need to read s
			h.setLive(e, t.Known(), now, others, staleAfter)
			load += e.Running + e.Waiting
			own += float64(h.inFlightAtScrape)
		}
		n++
	}
	for _, x := range todo[:nTodo] {
		m := &members[x.member]
		var e *framework.Endpoint
		var h *candidateSample
		if x.pos < 0 {
			held = grow(held)
			e, h = &held[len(held)-1], &st.kept.heldSample
		} else {
			e, h = &all[x.pos], &kept[x.pos]
		}
		fill(e, m, int(x.member), x.s, h)
		h.setLive(e, m.target.Known(), now, others, staleAfter)
	}
	clear(todo[:nTodo]) // drop the Sample pointers
	st.held = held
	st.kept.built = n
	return all[:n], held, load, own
}

// schedule runs the profile over eps (the candidates, or the held ones),
// keeping the candidates for the next build on st unless it moved them.
func (st *cycleState) schedule(pr *scheduler.Profile, eps []framework.Endpoint, dst []int32) ([]int32, bool) {
	st.kept.valid = 0 // until Schedule is known not to have moved them (it may panic)
	picked, shed := pr.Schedule(&st.cycle, eps, &st.buf, dst)
	if !st.buf.Moved {
		st.kept.valid = st.kept.built
	}
	return picked, shed
}

// pickInHint answers a fail-open pool whose hinted endpoints have no
// usable metrics: the hinted members with the fewest requests in flight from
// this proxy, ties broken from a random starting member, up to the
// profile's list length. The hint matched at least one member (markHint).
func (p *Pool) pickInHint(v *view, st *cycleState, res *Result) {
	k := min(p.profile.MaxEndpoints, maxListed)
	n := len(v.members)
	// Ties start from a random hinted member, each as likely: a random
	// start over all members would favour the hinted member after a run
	// of unhinted ones.
	hinted := 0
	for i := range n {
		if st.inHint[i] {
			hinted++
		}
	}
	skip, start := int(st.cycle.Rand()%uint64(hinted)), 0
	for ; ; start++ {
		if st.inHint[start] {
			if skip == 0 {
				break
			}
			skip--
		}
	}
	var inFlight [maxListed]int64
	for j := 0; j < n; j++ {
		i := (start + j) % n
		if !st.inHint[i] {
			continue
		}
		f := v.members[i].target.InFlight()
		// Insertion into the sorted top k; a later equal count goes after.
		pos := res.n
		for pos > 0 && inFlight[pos-1] > f {
			pos--
		}
		if pos >= k {
			continue
		}
		last := min(res.n, k-1)
		copy(res.members[pos+1:last+1], res.members[pos:last])
		copy(inFlight[pos+1:last+1], inFlight[pos:last])
		res.members[pos], inFlight[pos] = int32(i), f
		res.n = last + 1
	}
	for j := 0; j < res.n; j++ {
		res.eps[j] = v.members[res.members[j]].addr
	}
	res.started = v.members[res.members[0]].target
	res.started.Start()
	p.picks.Add(1)
	p.noMetrics.Add(1)
}

// grow extends eps by one element without zeroing it when the buffer
// allows: the caller sets every field.
func grow(eps []framework.Endpoint) []framework.Endpoint {
	if len(eps) < cap(eps) {
		return eps[:len(eps)+1]
	}
	return append(eps, framework.Endpoint{})
}

// markHint marks the members named by the subset hint and reports whether
// any matched.
func (st *cycleState) markHint(v *view, subset []string) bool {
	if cap(st.inHint) < len(v.members) {
		st.inHint = make([]bool, len(v.members))
	}
	st.inHint = st.inHint[:len(v.members)]
	clear(st.inHint)
	matched := false
	for _, a := range subset {
		if i, ok := v.byAddr[a]; ok {
			st.inHint[i] = true
			matched = true
		}
	}
	return matched
}

// setEndpoints installs a new endpoint set from the source.
func (p *Pool) setEndpoints(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	old := p.view.Load()
	next := &view{members: make([]member, 0, len(addrs)), byAddr: make(map[string]int32, len(addrs))}
	for _, a := range addrs {
		if i, ok := old.byAddr[a]; ok {
			next.members = append(next.members, old.members[i])
		} else {
			t := p.collector.Acquire(a, p.spec)
			next.members = append(next.members, member{
				addr:               a,
				key:                xxhash.Sum64String(a),
				id:                 p.allocID(),
				target:             t,
				scrapeErrorsAtJoin: t.Stats().ScrapeErrors,
			})
		}
		next.byAddr[a] = int32(len(next.members) - 1)
	}
	p.view.Store(next)
	for i := range old.members {
		if _, kept := next.byAddr[old.members[i].addr]; !kept {
			p.removeMember(&old.members[i])
		}
	}
}

func (p *Pool) removeMember(m *member) {
	p.scrapeErrorsGone.Add(m.target.Stats().ScrapeErrors - m.scrapeErrorsAtJoin)
	p.collector.Release(m.target)
	for _, pl := range p.profile.Plugins() {
		if f, ok := pl.(framework.Forgetter); ok {
			f.Forget(m.id)
		}
	}
	p.freeIDs = append(p.freeIDs, m.id)
}

func (p *Pool) allocID() int32 {
	if n := len(p.freeIDs); n > 0 {
		id := p.freeIDs[n-1]
		p.freeIDs = p.freeIDs[:n-1]
		return id
	}
	p.nextID++
	return p.nextID - 1
}

// close stops the source, releases the scrape targets and stops plugins.
func (p *Pool) close() {
	p.source.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	v := p.view.Load()
	for i := range v.members {
		p.collector.Release(v.members[i].target)
	}
	p.view.Store(&view{byAddr: map[string]int32{}})
	p.closePlugins()
	if p.gossip != nil {
		p.gossip.Leave()
	}
}

func (p *Pool) closePlugins() {
	if p.profile == nil {
		return
	}
	for _, pl := range p.profile.Plugins() {
		if c, ok := pl.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// WaitReady waits until at least one endpoint has usable metrics, for tests
// and tools; the proxy itself never waits (fail-open covers the start).
func (p *Pool) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range p.view.Load().members {
			if m.target.Sample() != nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s: no endpoint with metrics after %s", p.name, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
