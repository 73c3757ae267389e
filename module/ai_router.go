package main

import (
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

type aiRouterConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func (f *aiRouterConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	p, err := filterconfig.Parse(filterconfig.AIRouter, raw)
	if err != nil {
		return nil, err
	}
	cfg, err := newRouterFilterConfig(h, p.AIRouter)
	if err != nil {
		return nil, err
	}
	var closePools func()
	if p.EndpointPicker != nil {
		if cfg.picker, closePools, err = openRouterPicker(h, p.EndpointPicker); err != nil {
			return nil, err
		}
	}
	fac, err := newReusingFactory(filterconfig.AIRouter, h, p.Debug, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return newRouterFilter(cfg, fh)
	}, releaseFilter, closePools)
	if err != nil {
		if closePools != nil {
			closePools()
		}
		return nil, err
	}
	if f, ok := fac.(*abi.Factory); ok && cfg.picker != nil {
		cfg.picker.panics, cfg.picker.countPanics, cfg.picker.barrier = f.Barrier.PanicCounter, true, f.Barrier
	}
	return fac, nil
}

// CreatePerRoute parses {"pool": "name"}, the pool of ai_router's
// endpointPicker a route's requests go to, as endpoint_picker's per-route
// config does; anything else is refused when the route loads.
func (f *aiRouterConfigFactory) CreatePerRoute(raw []byte) (any, error) {
	rc, err := filterconfig.ParsePerRoute(filterconfig.AIRouter, raw)
	if err != nil {
		return nil, err
	}
	return pickerRoute{pool: rc.Pool}, nil
}

// GenAI stat tags, OpenTelemetry's attribute names, in AI Gateway's order.
var genAITags = []string{"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.original.model", "gen_ai.request.model", "gen_ai.response.model", "error.type"}

// routerFilterConfig is shared by every stream of one ai_router config.
type routerFilterConfig struct {
	*transform.Config
	budgets *transform.Budgets
	picker  *pickerFilterConfig // endpointPicker's: ai_router picks too; nil without

	tokenUsage, duration, ttft, tpot shared.MetricID
}

func newRouterFilterConfig(h shared.HttpFilterConfigHandle, c *transform.Config) (*routerFilterConfig, error) {
	rc := &routerFilterConfig{Config: c, budgets: c.Budgets()}
	d := metricDefiner{h: h}
	// Token counts; durations in microseconds (Envoy histograms are integers).
	rc.tokenUsage = d.histogram(transform.MetricTokenUsage, append(append([]string{}, genAITags...), "gen_ai.token.type")...)
	rc.duration = d.histogram(transform.MetricRequestDuration, genAITags...)
	rc.ttft = d.histogram(transform.MetricTimeToFirstToken, genAITags...)
	rc.tpot = d.histogram(transform.MetricTimePerOutputToken, genAITags...)
	return rc, d.err
}

// aiRouterFilter handles one stream.
type aiRouterFilter struct {
	shared.EmptyHttpFilter
	cfg *routerFilterConfig
	h   shared.HttpFilterHandle
	s   abi.Stream // h's getters and stats, called without the SDK's allocations

	start       time.Time
	ep          transform.Endpoint
	active      bool // a known endpoint: the body is ours to read
	decided     bool
	rewriteHdr  string
	budgetKey   uint64
	hasBudget   bool
	body        *[]byte // pooled; Prompt may point into it until OnDestroy
	facts       factsHandoff
	decision    transform.Decision
	tags        [6]string        // stat tag values: one backing array per stream
	meter       *transform.Meter // the response's: ownMeter, once the response headers came
	ownMeter    *transform.Meter // kept for the filter's next streams (Meter.Reset)
	restorer    *transform.ModelRestorer
	restored    []byte
	stripper    *transform.UsageChunkStripper // drops the usage chunk the client did not ask for
	stripped    []byte
	chunks      []shared.UnsafeEnvoyBuffer // a body hook's chunks, reused (abi.BodyChunks)
	b           abi.Batch                  // a hook's callbacks in one call from Go (room kept across streams)
	forwarded   bool                       // decided and sent upstream: it costs something from now on
	estimate    transform.Estimate         // the request's estimated cost
	reservation transform.Reservation
	reserved    bool   // reservation is not settled yet
	backend     string // aliases backendBuf
	backendBuf  []byte
	cacheWrites uint64 // prompt-cache writes ai_upstream published for the response
	costs       []transform.CostValue
	costBuf     [4]transform.CostValue
	accountedAt bool

	// Set on the request path: the body-limit shortcut, and the facts
	// handed to endpoint_picker.
	lengthChecked bool         // content-length was within the body limit
	factsVal      requestFacts // what facts hands endpoint_picker, until OnDestroy
	// The request headers as the headers hook found them, read in one
	// crossing (headerSnapshot): the hook reads several, and the body hook
	// reads accept-encoding and content-length from it too.
	hdrs headerSnapshot
	// pick is endpoint_picker's part when ai_router picks too
	// (endpointPicker): called where endpoint_picker's hooks would be, after
	// ai_router's on the request and before them on the response, as in the
	// chain ai_router, endpoint_picker. nil without.
	pick *endpointPickerFilter
}

func (f *aiRouterFilter) OnRequestHeaders(headers shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	f.start = time.Now()
	f.hdrs.read(headers)
	ep, err := f.cfg.Route(f.hdrs.get(":method"), f.hdrs.get(":path"))
	if err != nil {
		f.replyError(err)
		return shared.HeadersStatusStop
	}
	if ep == transform.EndpointModels {
		f.h.SendLocalResponse(200, abi.JSONHeaders, f.cfg.ModelsBody(), "ai_router_models")
		return shared.HeadersStatusStop
	}
	if f.cfg.budgets != nil {
		// Every path a request reaches a server by, passed-through ones too:
		// a spent key gets nothing more.
		key := f.cfg.budgets.Key(f.hdrs.get(f.cfg.Budget.Header))
		if ok, retryAfter := f.cfg.budgets.Check(key); !ok {
			f.replyWith(transform.BudgetExhausted(retryAfter), [2]string{"retry-after", transform.RetryAfter(retryAfter)})
			return shared.HeadersStatusStop
		}
		f.budgetKey, f.hasBudget = key, ep != transform.EndpointNone
	}
	if ep == transform.EndpointNone {
		// A client never chooses its own model route. Envoy chose the route
		// before this filter ran: with the header gone, it must choose again.
		// (On the other paths decide sets the header, replacing any value,
		// and clears the route cache, or the request is answered here.)
		if f.hdrs.count(headerModel) > 0 { // an empty value can match a route too
			headers.Remove(headerModel)
			f.h.ClearRouteCache()
		}
		if f.pick != nil { // not ours to read: endpoint_picker's own way
			return f.pick.OnRequestHeaders(headers, endOfStream)
		}
		return shared.HeadersStatusContinue
	}
	if n, err := strconv.ParseInt(f.hdrs.get("content-length"), 10, 64); err == nil {
		// Refused now, before Envoy buffers a body we would refuse anyway.
		if err := f.cfg.CheckBodySize(n); err != nil {
			f.replyError(err)
			return shared.HeadersStatusStop
		}
		f.lengthChecked = true
	}
	f.ep, f.active = ep, true
	f.rewriteHdr = strings.Clone(f.hdrs.get(transform.ModelRewriteHeader)) // Decide's strings are its own
	if endOfStream {
		return headersStatus(f.decide(nil))
	}
	return shared.HeadersStatusStop
}

func (f *aiRouterFilter) OnRequestBody(body shared.BodyBuffer, endOfStream bool) shared.BodyStatus {
	if !f.active && f.pick != nil {
		return f.pick.OnRequestBody(body, endOfStream)
	}
	if !f.active || f.decided {
		return shared.BodyStatusContinue
	}
	if !endOfStream {
		// Under a content-length checked at the headers, Envoy's codec
		// delivers no more than that: nothing to read until the end.
		if !f.lengthChecked {
			if err := f.cfg.CheckBodySize(int64(bodySizeSoFar(f.h, body))); err != nil {
				f.replyError(err)
				return shared.BodyStatusStopNoBuffer
			}
		}
		return shared.BodyStatusStopAndBuffer
	}
	parts := newBodyParts(f.h, body, f.chunks[:0])
	f.chunks = parts.chunks
	defer clear(f.chunks) // no view into Envoy's memory outlives the hook
	if err := f.cfg.CheckBodySize(int64(parts.size())); err != nil {
		f.replyError(err)
		return shared.BodyStatusStopNoBuffer
	}
	if f.decide(&parts) {
		return shared.BodyStatusContinue
	}
	if f.pick != nil && f.pick.waiting {
		return shared.BodyStatusStopAndBuffer // the body goes on after the probes
	}
	return shared.BodyStatusStopNoBuffer
}

func (f *aiRouterFilter) OnRequestTrailers(trailers shared.HeaderMap) shared.TrailersStatus {
	if !f.active && f.pick != nil {
		return f.pick.OnRequestTrailers(trailers)
	}
	if !f.active || f.decided {
		return shared.TrailersStatusContinue
	}
	parts := newBodyParts(f.h, nil, f.chunks[:0])
	f.chunks = parts.chunks
	defer clear(f.chunks)
	if f.decide(&parts) {
		return shared.TrailersStatusContinue
	}
	return shared.TrailersStatusStop
}

// decide reads the whole body, then either answers the request or sets the
// model header, rewrites the body if needed and hands the parse on to
// endpoint_picker, or picks itself (endpointPicker). It reports whether
// the request goes on.
// parts is nil for a request that ended with its headers.
func (f *aiRouterFilter) decide(parts *bodyParts) bool {
	f.decided = true
	var body []byte
	if parts != nil {
		f.body = getBody(int(parts.size()))
		*f.body = parts.appendTo(*f.body)
		body = *f.body
	}
	d, err := f.cfg.Decide(f.ep, body, f.rewriteHdr)
	if err != nil {
		f.replyError(err)
		return false
	}
	f.decision = d
	f.ep = d.Endpoint // /invocations is served as the endpoint its body asks for
	f.estimate = f.cfg.EstimateOf(&d, len(body))
	if f.hasBudget {
		// Reserve now, settle at the end: concurrent requests of a key
		// cannot all pass before any is charged.
		r, ok, retryAfter := f.cfg.budgets.Reserve(f.budgetKey, f.estimate.Total())
		if !ok {
			f.replyWith(transform.BudgetExhausted(retryAfter), [2]string{"retry-after", transform.RetryAfter(retryAfter)})
			return false
		}
		f.reservation, f.reserved = r, true
	}
	f.forwarded = true
	// The header writes, the route cache and the handoff: one call from Go
	// (two for a new handoff, three with a rewritten body).
	b := &f.b
	b.Start(f.s)
	defer b.Clear()
	headers := f.h.RequestHeaders()
	b.SetHeader(headers, headerModel, d.Model)
	// Routes match on x-ai-eg-model: one listener, many models and pools.
	b.ClearRouteCache()
	if d.Body != nil && parts != nil {
		b.Run() // in order: the body after the header and the route cache
		parts.replace(d.Body)
		if f.hdrs.get("content-length") != "" { // a chunked request has none and keeps none
			b.SetHeader(headers, "content-length", strconv.Itoa(len(d.Body)))
		}
	}
	if d.TargetModel != d.Model || d.UsageInjected {
		// The response's model is mapped back to the client's name, and the
		// usage chunk the client did not ask for is stripped, only in
		// plain bytes, so the server must not compress it: a compressed
		// answer would show the client the target's name. A compressor
		// filter after the router can still compress for the client.
		b.RemoveHeader(headers, "accept-encoding")
	} else {
		meteredAcceptEncoding(b, headers, &f.hdrs)
	}
	// d.Prompt points into f.body or d.Body, which live until OnDestroy.
	f.factsVal = requestFacts{Model: d.TargetModel, Prompt: d.Prompt, Stream: d.Stream}
	if f.pick != nil {
		// ai_router picks too: the pick's reads in this batch, after the
		// writes (they see the new route), and the facts directly.
		reads := f.pick.addReads(b, headers, false)
		b.Run()
		return f.pick.pickWith(headers, b, reads, &f.factsVal)
	}
	f.facts.publish(b, &f.factsVal) // runs b
	return true
}

// meteredAcceptEncoding lets the server answer only in encodings the meter
// reads: an answer in br or zstd would carry usage no one reads. Several
// accept-encoding headers are read as one list and become one. before is
// the request headers as the headers hook read them (between that hook and
// the body's end, only a filter before this one editing them from its own
// body hook could change them, which Envoy allows but is not done).
func meteredAcceptEncoding(b *abi.Batch, headers shared.HeaderMap, before *headerSnapshot) {
	n := before.count("accept-encoding")
	v := before.get("accept-encoding")
	if n > 1 {
		v = string(before.appendList(nil, "accept-encoding"))
	}
	ae, change := transform.MeteredAcceptEncoding(v)
	switch {
	case !change && n < 2:
	case ae == "":
		b.RemoveHeader(headers, "accept-encoding")
	default:
		b.SetHeader(headers, "accept-encoding", ae) // the batch copies it
	}
}

func (f *aiRouterFilter) replyError(err error) {
	e, ok := err.(*transform.Error)
	if !ok {
		e = &transform.Error{Status: 500, Type: "internal_error", Code: "internal_error", Message: err.Error()}
	}
	f.replyWith(e)
}

func (f *aiRouterFilter) replyWith(e *transform.Error, extra ...[2]string) {
	headers := append(append([][2]string{}, abi.JSONHeaders...), extra...)
	f.h.SendLocalResponse(uint32(e.Status), headers, e.Body(), "ai_router_"+e.Code)
}

// responseKeys are the response headers the router reads.
var responseKeys = [3]string{":status", "content-type", "content-encoding"}

func (f *aiRouterFilter) OnResponseHeaders(headers shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	if f.pick != nil {
		f.pick.OnResponseHeaders(headers, endOfStream) // always goes on
	}
	if !f.decided || f.meter != nil {
		return shared.HeadersStatusContinue
	}
	var v [3]shared.UnsafeEnvoyBuffer // one call from Go for the three
	abi.HeaderValues(headers, responseKeys[:], v[:])
	status, _ := strconv.Atoi(v[0].ToUnsafeString())
	// Views into Envoy's memory: NewMeter and NewModelRestorer keep neither.
	contentType, encoding := v[1].ToUnsafeString(), v[2].ToUnsafeString()
	if f.ownMeter == nil {
		f.ownMeter = new(transform.Meter)
	}
	f.ownMeter.Reset(f.ep, status, contentType, encoding)
	f.meter = f.ownMeter
	if f.cfg.NeedsBackend() { // only a cost expression reads it: no crossing without one
		if v, ok := f.s.AttributeString(shared.AttributeIDUpstreamAddress); ok {
			// A copy in the filter's own buffer, read before the stream ends.
			f.backendBuf = append(f.backendBuf[:0], v.ToUnsafeBytes()...)
			f.backend = unsafe.String(unsafe.SliceData(f.backendBuf), len(f.backendBuf))
		}
	}
	if f.decision.TargetModel != f.decision.Model && (encoding == "" || strings.EqualFold(encoding, "identity")) {
		// The client asked for Model: the response says so too.
		f.restorer = transform.NewModelRestorer(f.decision.Model, contentType)
		headers.Remove("content-length")
	}
	if f.decision.UsageInjected && f.meter.Stream() && (encoding == "" || strings.EqualFold(encoding, "identity")) {
		f.stripper = transform.NewUsageChunkStripper()
		headers.Remove("content-length")
	}
	if endOfStream {
		f.account(time.Now())
	}
	return shared.HeadersStatusContinue
}

func (f *aiRouterFilter) OnResponseBody(body shared.BodyBuffer, endOfStream bool) shared.BodyStatus {
	if f.meter == nil {
		return shared.BodyStatusContinue
	}
	now := time.Now()
	f.chunks = abi.BodyChunks(body, f.chunks[:0])
	defer clear(f.chunks) // no view into Envoy's memory outlives the hook
	chunks := f.chunks
	changed := false
	out := f.restored[:0] // what the client gets, when it changes
	if f.stripper != nil {
		out = f.stripped[:0]
	}
	for _, c := range chunks {
		b := c.ToUnsafeBytes()
		f.meter.Write(b, now)
		var ch bool
		switch {
		case f.restorer != nil && f.stripper != nil:
			f.restored, ch = f.restorer.Write(f.restored[:0], b)
			changed = changed || ch
			out, ch = f.stripper.Write(out, f.restored)
		case f.restorer != nil:
			out, ch = f.restorer.Write(out, b)
		case f.stripper != nil:
			out, ch = f.stripper.Write(out, b)
		}
		changed = changed || ch
	}
	if endOfStream && f.stripper != nil {
		var ch bool
		out, ch = f.stripper.Flush(out)
		changed = changed || ch
	}
	if f.stripper != nil {
		f.stripped = out
	} else {
		f.restored = out
	}
	if changed {
		// Views into the body die at the next setter: we hold only copies.
		body.Drain(body.GetSize())
		if len(out) > 0 {
			body.Append(out)
		}
	}
	if endOfStream {
		f.account(now) // the frame's time: the last byte came with it
	}
	return shared.BodyStatusContinue
}

func (f *aiRouterFilter) OnResponseTrailers(shared.HeaderMap) shared.TrailersStatus {
	if f.meter != nil {
		f.account(time.Now())
	}
	return shared.TrailersStatusContinue
}

// OnStreamComplete accounts a response cut short (reset, client gone), and
// charges a request that went upstream but got no response at all.
func (f *aiRouterFilter) OnStreamComplete() {
	switch {
	case f.meter != nil:
		if !f.accountedAt { // the usual answer was accounted at its end: no clock read
			f.account(time.Now())
		}
	case f.forwarded:
		f.b.Start(f.s)
		f.charge(nil)
	}
	if f.pick != nil {
		f.pick.OnStreamComplete()
	}
}

func (f *aiRouterFilter) OnDestroy() {
	f.facts.release() // before the body its Prompt points into goes back
	putBody(f.body)
	f.body = nil
	// Only if stream_complete never came (no handle calls here): release
	// the meter's decoder and the budget reservation.
	if f.meter != nil && !f.accountedAt {
		r := f.meter.Finish(time.Now())
		f.settle(transform.ChargeOf(&r, f.estimate))
	}
	if f.reserved {
		f.settle(transform.ChargeOf(nil, f.estimate))
	}
}

// account ends the response: GenAI stats, costs into dynamic metadata for
// the rate limit filter, and the budget charge.
func (f *aiRouterFilter) account(now time.Time) {
	if f.accountedAt {
		return
	}
	f.accountedAt = true
	r := f.meter.Finish(now)
	d := &f.decision
	b := &f.b
	b.Start(f.s)
	defer b.Clear()
	// Model and provider tags are bounded (MetricModel, MetricProvider):
	// Envoy never frees a stat.
	f.tags = [6]string{f.ep.Operation(), f.provider(r.HasUsage), f.cfg.MetricModel(d.Model), f.cfg.MetricModel(d.TargetModel), f.cfg.MetricModel(r.Model), r.ErrorType()}
	tags := f.tags[:]
	t := r.Timing(f.start, now)
	// The stats, then the costs (charge): one call from Go.
	b.RecordHistogram(f.cfg.duration, uint64(t.Duration.Microseconds()), tags...)
	if t.HasTTFT {
		b.RecordHistogram(f.cfg.ttft, uint64(t.TimeToFirstToken.Microseconds()), tags...)
	}
	if t.HasTPOT {
		b.RecordHistogram(f.cfg.tpot, uint64(t.TimePerOutputToken.Microseconds()), tags...)
	}
	if r.HasUsage {
		// The server's counts only: estimates stay out of the histogram.
		for _, c := range r.Usage.Counts() {
			if c.Count == 0 && (c.Type == transform.TokenTypeCachedInput || c.Type == transform.TokenTypeReasoning) {
				continue // most responses have none: skip the record
			}
			b.RecordHistogramTagged(f.cfg.tokenUsage, c.Count, tags, c.Type)
		}
		if f.cacheWrites > 0 {
			b.RecordHistogramTagged(f.cfg.tokenUsage, f.cacheWrites, tags, transform.TokenTypeCacheCreationInput)
		}
	}
	f.charge(&r) // runs b
}

// provider is the gen_ai.provider.name of the answer: what the attempt's
// ai_upstream wrote (the last attempt's, on retries), or "openai" for a
// cluster without one (an InferencePool). With a provider written and
// usage read, the prompt-cache writes ai_upstream published are noted for
// the stats and costs. Both read in one call from Go, through f.b.
func (f *aiRouterFilter) provider(hasUsage bool) string {
	name := f.b.MetadataString(shared.MetadataSourceTypeDynamic, transform.CostNamespace, transform.ProviderNameKey)
	writes := f.b.MetadataNumber(shared.MetadataSourceTypeDynamic, transform.CostNamespace, transform.CacheCreationInputTokensKey)
	f.b.Run()
	v, ok := f.b.View(name)
	if ok && hasUsage {
		if n, ok := f.b.Number(writes); ok {
			f.cacheWrites = metadataCount(n)
		}
	}
	return transform.MetricProvider(v.ToUnsafeString(), ok)
}

// metadataCount reads a token count from a metadata number: anything but a
// finite non-negative number is 0; counts beyond uint64 saturate.
func metadataCount(n float64) uint64 {
	switch {
	case !(n > 0): // NaN too
		return 0
	case n >= 1<<64:
		return ^uint64(0)
	}
	return uint64(n)
}

// charge writes the costs of the response (r nil: none came) and settles
// the budget reservation: the server's usage when the meter read it, else
// an estimate, said so under transform.UsageEstimateKey. Nothing read is
// never free. The writes go into f.b, with what the caller added before
// (account's stats), and run.
func (f *aiRouterFilter) charge(r *transform.Report) {
	defer f.b.Run()
	if !f.forwarded {
		return
	}
	f.forwarded = false // once
	ch := transform.ChargeOf(r, f.estimate)
	if ch.Charged {
		var err error
		var route string
		if f.cfg.NeedsRouteName() {
			if v, ok := f.s.AttributeString(shared.AttributeIDXdsRouteName); ok {
				route = v.ToString()
			}
		}
		// model is what the client asked for, as documented and as AI Gateway has it.
		u := transform.CostUsage{Usage: ch.Usage}
		if ch.Source == transform.UsageCounted {
			u.CacheCreationInputTokens = f.cacheWrites
		}
		f.costs, err = f.cfg.AppendCosts(f.costBuf[:0], u, f.decision.Model, f.backend, route)
		if err != nil {
			f.h.Log(shared.LogLevelWarn, "ai_router: token costs: %v", err)
		}
		for _, c := range f.costs {
			f.b.SetMetadataUint(transform.CostNamespace, c.MetadataKey, c.Value)
		}
		if ch.Source != transform.UsageCounted {
			f.b.SetMetadataString(transform.CostNamespace, transform.UsageEstimateKey, string(ch.Source))
		}
	}
	f.settle(ch)
}

// settle ends the budget reservation, once.
func (f *aiRouterFilter) settle(ch transform.Charge) {
	if !f.reserved {
		return
	}
	f.reserved = false
	var tokens uint64
	if ch.Charged {
		tokens = ch.Usage.TotalTokens
	}
	f.cfg.budgets.Settle(f.reservation, tokens)
}
