package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// pickerMaxBody bounds what endpoint_picker buffers when it runs without
// ai_router and must read the model from the body itself.
const pickerMaxBody = 4 << 20

type endpointPickerConfigFactory struct{}

func (f *endpointPickerConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	p, err := filterconfig.Parse(filterconfig.EndpointPicker, raw)
	if err != nil {
		return nil, err
	}
	pools, err := picker.Open(p.EndpointPicker)
	if err != nil {
		return nil, fmt.Errorf("%s filter_config: %w", filterconfig.EndpointPicker, err)
	}
	cfg, err := newPickerFilterConfig(h, pools)
	if err != nil {
		pools.Close()
		return nil, err
	}
	fac, err := newReusingFactory(filterconfig.EndpointPicker, h, p.Debug, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return newPickerFilter(cfg, fh)
	}, releaseFilter, pools.Close)
	if err != nil {
		pools.Close()
		return nil, err
	}
	// The pools' goroutines count the panics they recover; they reach the
	// filter's panics counter with the other published stats.
	if f, ok := fac.(*abi.Factory); ok {
		cfg.panics, cfg.countPanics, cfg.barrier = f.Barrier.PanicCounter, true, f.Barrier
	}
	return fac, nil
}

// CreatePerRoute parses {"pool": "name"}: the pool a route's requests go to.
// Without it a request goes to the first pool.
func (f *endpointPickerConfigFactory) CreatePerRoute(raw []byte) (any, error) {
	rc, err := filterconfig.ParsePerRoute(filterconfig.EndpointPicker, raw)
	if err != nil {
		return nil, err
	}
	return pickerRoute{pool: rc.Pool}, nil
}

type pickerRoute struct{ pool string }

// pickerFilterConfig is shared by every stream of one filter config.
type pickerFilterConfig struct {
	pools *picker.Pools
	first *picker.Pool

	picks, sheds, noCapacity, noMetrics, scrapeErrors shared.MetricID
	pickLatency                                       shared.MetricID
	ready, saturated                                  shared.MetricID
	// scrape.fleet.gossip, per pool (the socket's, when pools share one).
	gossipPeers, gossipReceived, gossipRefused shared.MetricID
	panics                                     shared.MetricID // endpoint_picker.panics, the barrier's
	countPanics                                bool
	barrier                                    *abi.Barrier  // guards the scheduled resumption after probes; nil in unit tests
	asyncPanics                                atomic.Uint64 // recovered on the probes' goroutines, not published yet
	// Pick-time probing (probe_wait.go), per pool.
	probes, probeChanged, probeTimeouts shared.MetricID
	// Per endpoint (tags pool, endpoint): what the picker saw last.
	epWaiting, epRunning, epKVCache, epInFlight, epSaturated, epHealthy shared.MetricID

	// Stats that the collector's goroutines produce reach Envoy from the
	// next stream that passes by, at most once per gaugeEvery.
	lastGauges         atomic.Int64
	scrapeErrsReported []atomic.Uint64   // per pool, in pools.List() order
	publishing         sync.Mutex        // one publisher at a time; guards shown
	shown              []map[string]bool // per pool: endpoints with gauges set
}

const gaugeEvery = int64(time.Second)

func newPickerFilterConfig(h shared.HttpFilterConfigHandle, pools *picker.Pools) (*pickerFilterConfig, error) {
	c := &pickerFilterConfig{pools: pools, first: pools.List()[0],
		scrapeErrsReported: make([]atomic.Uint64, len(pools.List()))}
	d := metricDefiner{h: h, prefix: filterconfig.EndpointPicker + "."}
	c.picks = d.counter("picks", "pool", "endpoint")
	c.sheds = d.counter("sheds", "pool")
	c.noCapacity = d.counter("no_capacity", "pool")
	c.noMetrics = d.counter("no_metrics", "pool")
	c.scrapeErrors = d.counter("scrape_errors", "pool")
	c.pickLatency = d.histogram("pick_duration_us", "pool")
	c.ready = d.gauge("ready_endpoints", "pool")
	c.saturated = d.gauge("saturated_endpoints", "pool")
	c.gossipPeers = d.gauge("gossip_peers", "pool")
	c.gossipReceived = d.counter("gossip_received", "pool")
	c.gossipRefused = d.counter("gossip_refused", "pool", "reason")
	c.epWaiting = d.gauge("endpoint_waiting_requests", "pool", "endpoint")
	c.epRunning = d.gauge("endpoint_running_requests", "pool", "endpoint")
	c.epKVCache = d.gauge("endpoint_kv_cache_usage_percent", "pool", "endpoint")
	c.epInFlight = d.gauge("endpoint_in_flight", "pool", "endpoint")
	c.epSaturated = d.gauge("endpoint_saturated", "pool", "endpoint")
	c.epHealthy = d.gauge("endpoint_healthy", "pool", "endpoint")
	c.probes = d.counter("probes", "pool")
	c.probeChanged = d.counter("probe_changed", "pool")
	c.probeTimeouts = d.counter("probe_timeouts", "pool")
	c.shown = make([]map[string]bool, len(pools.List()))
	return c, d.err
}

// poolFor is the pool of the stream's route: its per-route config's, read
// only when the route has one (hasRoute, abi.Batch.HasRouteConfig), else
// the first.
func (c *pickerFilterConfig) poolFor(h shared.HttpFilterHandle, hasRoute bool) (*picker.Pool, string) {
	if !hasRoute {
		return c.first, ""
	}
	if rc, ok := h.GetMostSpecificConfig().(pickerRoute); ok {
		if p := c.pools.Pool(rc.pool); p != nil {
			return p, ""
		}
		return nil, rc.pool
	}
	return c.first, ""
}

// publishGauges turns the pools' own counters into Envoy stats. Envoy stats
// can only be touched from a stream, so a stream does it now and then.
// now is the stream's clock reading (one less per request).
func (c *pickerFilterConfig) publishGauges(h shared.HttpFilterHandle, at time.Time) {
	now := at.UnixNano()
	last := c.lastGauges.Load()
	if now-last < gaugeEvery || !c.lastGauges.CompareAndSwap(last, now) || !c.publishing.TryLock() {
		return
	}
	defer c.publishing.Unlock()
	if n := c.asyncPanics.Swap(0); n > 0 && c.countPanics {
		h.IncrementCounterValue(c.panics, n) // untagged, as the barrier's
	}
	for i, p := range c.pools.List() {
		st := p.Stats()
		h.SetGaugeValue(c.ready, uint64(st.Ready), st.Name)
		h.SetGaugeValue(c.saturated, uint64(st.Saturated), st.Name)
		if prev := c.scrapeErrsReported[i].Swap(st.ScrapeErrors); st.ScrapeErrors > prev {
			h.IncrementCounterValue(c.scrapeErrors, st.ScrapeErrors-prev, st.Name)
		}
		if g := st.Gossip; g != nil {
			h.SetGaugeValue(c.gossipPeers, uint64(g.Peers), st.Name)
			// Counted once, by whichever pool or filter config takes them:
			// the socket outlives a config reload and may serve many pools.
			d, _ := p.TakeGossipCounts()
			if d.Received > 0 {
				h.IncrementCounterValue(c.gossipReceived, d.Received, st.Name)
			}
			for r, n := range d.Refused {
				if n > 0 {
					h.IncrementCounterValue(c.gossipRefused, n, st.Name, collector.GossipRefusal(r).String())
				}
			}
			if d.Panics > 0 && c.countPanics {
				h.IncrementCounterValue(c.panics, d.Panics) // untagged, as the barrier's
			}
		}
		c.publishEndpoints(h, i, &st)
	}
}

// publishEndpoints sets each endpoint's gauges, and zeroes those of the
// endpoints that left the pool since: the endpoint tag only ever takes
// addresses of the pool's own endpoint source, never a client's value.
func (c *pickerFilterConfig) publishEndpoints(h shared.HttpFilterHandle, pool int, st *picker.PoolStats) {
	now := make(map[string]bool, len(st.PerEndpoint))
	for i := range st.PerEndpoint {
		e := &st.PerEndpoint[i]
		now[e.Addr] = true
		c.setEndpoint(h, st.Name, e.Addr, uint64(max(e.Waiting, 0)), uint64(max(e.Running, 0)),
			uint64(min(max(e.KVUsage, 0), 1)*100+0.5), uint64(max(e.InFlight, 0)), boolGauge(e.Saturated), boolGauge(e.Healthy))
	}
	for addr := range c.shown[pool] {
		if !now[addr] {
			c.setEndpoint(h, st.Name, addr, 0, 0, 0, 0, 0, 0)
		}
	}
	c.shown[pool] = now
}

func (c *pickerFilterConfig) setEndpoint(h shared.HttpFilterHandle, pool, addr string, waiting, running, kv, inFlight, saturated, healthy uint64) {
	h.SetGaugeValue(c.epWaiting, waiting, pool, addr)
	h.SetGaugeValue(c.epRunning, running, pool, addr)
	h.SetGaugeValue(c.epKVCache, kv, pool, addr)
	h.SetGaugeValue(c.epInFlight, inFlight, pool, addr)
	h.SetGaugeValue(c.epSaturated, saturated, pool, addr)
	h.SetGaugeValue(c.epHealthy, healthy, pool, addr)
}

func boolGauge(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// endpointPickerFilter picks endpoints for one stream.
type endpointPickerFilter struct {
	shared.EmptyHttpFilter
	cfg  *pickerFilterConfig
	h    shared.HttpFilterHandle
	s    abi.Stream // h's getters and stats, called without the SDK's allocations
	pool *picker.Pool

	req     picker.Request
	res     picker.Result
	decided bool // a pick (or an answer) was made for this stream
	picked  bool // res holds an endpoint in flight
	failed  bool // the response says the endpoint failed
	hdr     []byte
	dest    string // hdr as a string, while Envoy copies it
	body    []byte
	use     bodyUse                    // without ai_router: what the body is read for
	chunks  []shared.UnsafeEnvoyBuffer // a body hook's chunks, reused (abi.BodyChunks)
	// A hook's callbacks, made in one call from Go (its room kept for the
	// filter's next streams).
	b abi.Batch
	// Per-stream backing arrays: slices of them passed to the SDK do not
	// allocate (the filter is on the heap already).
	hdrBuf [128]byte
	tags   [2]string

	// Pick-time probing (probe_wait.go): the wait in progress (nil: none),
	// whether the stream is stopped for it, the dry pick's first endpoint.
	probe      *probeTicket
	waiting    bool
	probeFirst string
}

func (f *endpointPickerFilter) OnRequestHeaders(headers shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	facts, ok := f.prepare(headers, true)
	if !ok {
		return shared.HeadersStatusStop
	}
	if facts != nil {
		// ai_router ran and parsed the body: no need to see it.
		f.req.Model, f.req.Prompt = facts.Model, facts.Prompt
		return f.headersStatus(f.pick(headers))
	}
	f.use = bodyOf(headers)
	if f.use == bodySkip || endOfStream && f.use == bodyPassThrough {
		return f.headersStatus(f.pick(headers))
	}
	if endOfStream { // an inference request without a body: ParseRequest names what is missing
		return f.headersStatus(f.readBody() && f.pick(headers))
	}
	return shared.HeadersStatusStop
}

// prepare reads what a pick needs besides the body, in one call from Go
// (pickReads), and takes it (useReads). It reports false when it answered
// the request.
func (f *endpointPickerFilter) prepare(headers shared.HeaderMap, receive bool) (*requestFacts, bool) {
	b := &f.b
	b.Start(f.s)
	r := f.addReads(b, headers, receive)
	b.Run()
	return f.useReads(b, r)
}

// pickReads are the batched reads a pick needs besides the body: the
// route's pool, the objective, the subset hint and, with receive, the
// facts ai_router handed on before it in the chain.
type pickReads struct {
	route, objective abi.Op
	subset           subsetReads
	facts            factsReads
	receive          bool
}

// addReads adds the reads to b, which may be another filter's batch on the
// same stream (ai_router's, when it picks too): they see its writes before
// them (the model header, the cleared route cache).
func (f *endpointPickerFilter) addReads(b *abi.Batch, headers shared.HeaderMap, receive bool) pickReads {
	r := pickReads{route: b.HasRouteConfig(), objective: b.HeaderValue(headers, headerObjective), subset: readSubset(b), receive: receive}
	if receive {
		r.facts = receiveRequestFacts(b)
	}
	return r
}

// useReads takes r once b ran: the pool (a pool the route names that this
// filter does not have is answered 503: false), the objective, the subset
// hint, and ai_router's facts when received (nil when it handed none).
func (f *endpointPickerFilter) useReads(b *abi.Batch, r pickReads) (*requestFacts, bool) {
	pool, missing := f.cfg.poolFor(f.h, b.OK(r.route))
	if pool == nil {
		f.decided = true
		f.reply(503, fmt.Sprintf("route names pool %q, which this endpoint_picker does not have", missing), "no_capacity")
		return nil, false
	}
	f.pool = pool
	v, _ := b.View(r.objective)
	f.req.Objective = v.ToString()
	f.useSubset(b, r.subset)
	if !r.receive {
		return nil, true
	}
	return r.facts.get(b), true
}

// pickWith picks for a request ai_router decided in the same filter (its
// endpointPicker), where endpoint_picker after it in the chain would: r
// were added to ai_router's batch b after its writes and ran with them,
// and ai_router's facts come directly. It reports whether the request goes
// on.
func (f *endpointPickerFilter) pickWith(headers shared.HeaderMap, b *abi.Batch, r pickReads, facts *requestFacts) bool {
	if _, ok := f.useReads(b, r); !ok {
		return false
	}
	f.req.Model, f.req.Prompt = facts.Model, facts.Prompt
	return f.pick(headers)
}

// bodyUse is what endpoint_picker, running without ai_router, does with a
// request body.
type bodyUse uint8

const (
	// bodyParse: an inference endpoint (POST chat, completions, embeddings,
	// responses). The body is read with ai_router's own parser
	// (transform.ParseRequest), so both deployments hash the same prompt
	// bytes; a body it rejects is answered 400 as ai_router would.
	bodyParse bodyUse = iota
	// bodyPassThrough: another path with a JSON body. Its top-level
	// "model", when there is a valid one, steers LoRA affinity; nothing in
	// it is an error (the path is not ours to judge).
	bodyPassThrough
	// bodySkip: another path with a body that is not JSON (a multipart
	// /v1/audio/transcriptions upload...): picked at once on load alone,
	// without buffering.
	bodySkip
)

func bodyOf(headers shared.HeaderMap) bodyUse {
	if abi.HeaderValue(headers, ":method").ToUnsafeString() == "POST" && transform.EndpointOf(abi.HeaderValue(headers, ":path").ToUnsafeString()).ParsesBody() {
		return bodyParse
	}
	if transform.IsJSON(abi.HeaderValue(headers, "content-type").ToUnsafeString()) {
		return bodyPassThrough
	}
	return bodySkip
}

// headersStatus is headersStatus for endpoint_picker's own hook: a stream
// waiting for its probes buffers its body without this filter seeing it.
func (f *endpointPickerFilter) headersStatus(ok bool) shared.HeadersStatus {
	if f.waiting {
		return shared.HeadersStatusStopAllAndBuffer
	}
	return headersStatus(ok)
}

func headersStatus(ok bool) shared.HeadersStatus {
	if ok {
		return shared.HeadersStatusContinue
	}
	return shared.HeadersStatusStop
}

func (f *endpointPickerFilter) OnRequestBody(body shared.BodyBuffer, endOfStream bool) shared.BodyStatus {
	if f.waiting {
		return shared.BodyStatusStopAndBuffer
	}
	if f.decided {
		return shared.BodyStatusContinue
	}
	var parts bodyParts
	var size uint64
	if endOfStream {
		parts = newBodyParts(f.h, body, f.chunks[:0])
		f.chunks = parts.chunks
		defer clear(f.chunks) // no view into Envoy's memory outlives the hook
		size = parts.size()
	} else {
		size = bodySizeSoFar(f.h, body)
	}
	if size > pickerMaxBody {
		if f.use == bodyPassThrough {
			// Not ours to refuse: picked on load, the body flows on.
			return f.bodyStatus(f.pick(f.h.RequestHeaders()))
		}
		f.decided = true
		f.reply(413, fmt.Sprintf("request body is over %d bytes", pickerMaxBody), "request_too_large")
		return shared.BodyStatusStopNoBuffer
	}
	if !endOfStream {
		return shared.BodyStatusStopAndBuffer
	}
	f.body = parts.appendTo(f.body[:0])
	return f.bodyStatus(f.readBody() && f.pick(f.h.RequestHeaders()))
}

// bodyStatus is the body hook's answer: a stream waiting for its probes
// keeps its body (the last frame joins the buffered body) for when it goes
// on.
func (f *endpointPickerFilter) bodyStatus(ok bool) shared.BodyStatus {
	if !ok && f.waiting {
		return shared.BodyStatusStopAndBuffer
	}
	return bodyStatus(ok)
}

func bodyStatus(ok bool) shared.BodyStatus {
	if ok {
		return shared.BodyStatusContinue
	}
	return shared.BodyStatusStopNoBuffer
}

func (f *endpointPickerFilter) OnRequestTrailers(shared.HeaderMap) shared.TrailersStatus {
	if f.waiting {
		return shared.TrailersStatusStop
	}
	if f.decided {
		return shared.TrailersStatusContinue
	}
	parts := newBodyParts(f.h, nil, f.chunks[:0])
	f.chunks = parts.chunks
	f.body = parts.appendTo(f.body[:0])
	clear(f.chunks)
	if f.readBody() && f.pick(f.h.RequestHeaders()) {
		return shared.TrailersStatusContinue
	}
	return shared.TrailersStatusStop
}

// readBody fills the request from f.body when ai_router did not run. An
// inference body the parser rejects is answered 400.
func (f *endpointPickerFilter) readBody() bool {
	if f.use == bodyPassThrough {
		f.req.Model = transform.PassThroughModel(f.body)
		return true
	}
	model, prompt, err := readInferenceBody(abi.HeaderValue(f.h.RequestHeaders(), ":path").ToUnsafeString(), f.body)
	if err != nil {
		f.decided = true
		f.replyError(err)
		return false
	}
	f.req.Model, f.req.Prompt = model, prompt
	return true
}

// readInferenceBody reads the model and the prompt of an inference
// request's body exactly as ai_router's Decide hands them to
// endpoint_picker (requestFacts, without a model rewrite): one parser, the
// same bytes. The prompt aliases body; the model is a copy.
func readInferenceBody(path string, body []byte) (string, []byte, error) {
	r, err := transform.ParseRequest(transform.EndpointOf(path), body)
	if err != nil {
		return "", nil, err
	}
	return strings.Clone(r.Model), r.Prompt, nil
}

// subsetReads are the batched reads of the subset hint: its list size and
// its string (both read: one call from Go either way).
type subsetReads struct{ list, str abi.Op }

// readSubset adds the reads of the subset hint to b.
func readSubset(b *abi.Batch) subsetReads {
	return subsetReads{
		list: b.MetadataListSize(shared.MetadataSourceTypeDynamic, metadataSubsetNS, metadataSubsetKey),
		str:  b.MetadataString(shared.MetadataSourceTypeDynamic, metadataSubsetNS, metadataSubsetKey),
	}
}

// useSubset reads the subset hint from dynamic metadata, once r ran: a
// list of ip:port, or one comma-separated string of them (entries of a
// list may be comma-separated too). Blanks around entries are ignored.
func (f *endpointPickerFilter) useSubset(b *abi.Batch, r subsetReads) {
	f.req.Subset, f.req.HasSubset = f.req.Subset[:0], false
	if n, ok := b.Number(r.list); ok {
		f.req.HasSubset = true
		for i := 0; i < int(n); i++ {
			if v, ok := f.s.MetadataListString(shared.MetadataSourceTypeDynamic, metadataSubsetNS, metadataSubsetKey, i); ok {
				f.req.Subset = appendSubset(f.req.Subset, v.ToString())
			}
		}
		return
	}
	if v, ok := b.View(r.str); ok {
		f.req.HasSubset = true
		f.req.Subset = appendSubset(f.req.Subset, v.ToString())
	}
}

// appendSubset appends the comma-separated entries of list (a copy, out of
// Envoy's memory) to dst.
func appendSubset(dst []string, list string) []string {
	for e := range strings.SplitSeq(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			dst = append(dst, e)
		}
	}
	return dst
}

// pick schedules the request and writes the answer: the destination header
// and metadata, or a local reply. It reports whether the request goes on;
// false with f.waiting set when it waits for its probes (probe_wait.go),
// which pick it later.
func (f *endpointPickerFilter) pick(headers shared.HeaderMap) bool {
	f.decided = true
	if f.startProbes() {
		return false
	}
	return f.pickNow(headers)
}

// pickNow is pick without probing.
func (f *endpointPickerFilter) pickNow(headers shared.HeaderMap) bool {
	// The answer's stats, header and metadata: one call from Go.
	f.b.Start(f.s)
	defer f.b.Clear()
	// A client never chooses its own endpoint: on success the header is
	// replaced below; otherwise it goes.
	ok := f.pickAndAnswer(headers)
	if !f.picked {
		f.b.RemoveHeader(headers, headerDestination)
	}
	f.b.Run()
	return ok
}

func (f *endpointPickerFilter) pickAndAnswer(headers shared.HeaderMap) bool {
	start := time.Now()
	f.pool.Pick(&f.req, &f.res)
	f.req.Prompt = nil // the prompt may point into a buffer we reuse
	pool := f.pool.Name()
	f.tags[0] = pool
	f.b.RecordHistogram(f.cfg.pickLatency, uint64(time.Since(start).Microseconds()), f.tags[:1]...)
	f.cfg.publishGauges(f.h, start)
	switch f.res.Status {
	case picker.StatusOK:
		f.picked = true
		f.hdr = f.res.AppendHeader(f.hdrBuf[:0])
		// The batch copies header and metadata values into its arena.
		f.dest = unsafe.String(unsafe.SliceData(f.hdr), len(f.hdr))
		f.b.SetHeader(headers, headerDestination, f.dest)
		f.b.SetMetadataString(metadataLB, metadataDestination, f.dest)
		f.tags[1] = f.res.Endpoints()[0]
		f.b.IncrementCounter(f.cfg.picks, 1, f.tags[:2]...)
		if f.probeFirst != "" && f.probeFirst != f.tags[1] {
			f.b.IncrementCounter(f.cfg.probeChanged, 1, f.tags[:1]...)
		}
		return true
	case picker.StatusShed:
		f.b.IncrementCounter(f.cfg.sheds, 1, f.tags[:1]...)
		f.reply(429, "the inference pool is saturated and this request is sheddable", "rate_limit_exceeded")
	case picker.StatusNoCapacity:
		f.b.IncrementCounter(f.cfg.noCapacity, 1, f.tags[:1]...)
		f.reply(503, "no endpoint of the pool can serve this request (subset hint matched none)", "no_capacity")
	case picker.StatusNoMetrics:
		f.b.IncrementCounter(f.cfg.noMetrics, 1, f.tags[:1]...)
		if f.pool.FailOpen() {
			// Envoy's fallback policy picks.
			return true
		}
		f.reply(503, "no endpoint of the pool has usable metrics", "no_capacity")
	}
	return false
}

// replyError answers with a parse error of transform's (an *Error).
func (f *endpointPickerFilter) replyError(err error) {
	f.b.Run() // what the hook did before it answers, first
	e, ok := err.(*transform.Error)
	if !ok {
		e = &transform.Error{Status: 500, Type: "internal_error", Code: "internal_error", Message: err.Error()}
	}
	f.h.SendLocalResponse(uint32(e.Status), abi.JSONHeaders, e.Body(), "endpoint_picker_"+e.Code)
}

func (f *endpointPickerFilter) reply(status uint32, msg, code string) {
	f.b.Run() // what the hook did before it answers, first
	errType := "invalid_request_error"
	if status >= 500 {
		errType = "service_unavailable"
	} else if status == 429 {
		errType = "rate_limit_exceeded"
	}
	e := transform.Error{Status: int(status), Type: errType, Code: code, Message: msg}
	f.h.SendLocalResponse(status, abi.JSONHeaders, e.Body(), "endpoint_picker_"+code)
}

func (f *endpointPickerFilter) OnResponseHeaders(headers shared.HeaderMap, _ bool) shared.HeadersStatus {
	if !f.picked {
		return shared.HeadersStatusContinue
	}
	// The endpoint that answered, as Envoy reports it (the metadata, else
	// the upstream address: both read, one call from Go), and the status.
	b := &f.b
	b.Start(f.s)
	defer b.Clear()
	served := b.MetadataString(shared.MetadataSourceTypeDynamic, metadataLB, metadataServedKey)
	addr := b.AttributeString(shared.AttributeIDUpstreamAddress)
	status := b.HeaderValue(headers, ":status")
	b.Run()
	v, ok := b.View(served)
	if !ok {
		v, ok = b.View(addr)
	}
	if ok {
		f.res.Served(v.ToUnsafeString()) // keeps no reference
	}
	if st, _ := b.View(status); st.Len == 3 && st.ToUnsafeString()[0] == '5' {
		f.failed = true
	}
	return shared.HeadersStatusContinue
}

// OnStreamComplete ends the in-flight count; a 5xx (Envoy's own 503 for a
// connect failure included) penalizes the endpoint that served.
func (f *endpointPickerFilter) OnStreamComplete() {
	if t := f.probe; t != nil { // reset while its probes were out
		t.timer.Stop()
		f.probe = nil
	}
	if !f.picked {
		return
	}
	if f.failed {
		f.res.Done(picker.OutcomeFailed)
	} else {
		f.res.Done(picker.OutcomeOK)
	}
}
