package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/internal/googletoken"
	"github.com/envoy-inferencepool/envoy-inferencepool/internal/secretfile"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// ai_upstream runs in a cluster's upstream HTTP filter chain, once per
// attempt, after the host is chosen (DESIGN.md section 10). It translates
// the attempt's OpenAI request for the backend the host belongs to, and the
// response back, with a transform.Translator; this file only moves headers
// and bytes between Envoy and it.

// upstreamMaxBody bounds the request body the filter holds to translate.
// Envoy's retry buffer (1 MiB by default) and ai_router's own limit are
// usually lower.
const upstreamMaxBody = 32 << 20

// originalRequestKey is the filter state key under which the first attempt
// keeps the request's :path and accept-encoding as the downstream filters
// left them ("path\naccept-encoding": neither can hold a line break).
// Retries share the request header map, so a retry finds the previous
// attempt's rewrites there; the filter state is the downstream stream's,
// shared by every attempt, and read-only once set, so the first value is
// the original.
const originalRequestKey = "envoy-inferencepool.ai_upstream.original_request"

type aiUpstreamConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func (f *aiUpstreamConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	p, err := filterconfig.Parse(filterconfig.AIUpstream, raw)
	if err != nil {
		return nil, err
	}
	cfg, err := newUpstreamFilterConfig(p.AIUpstream)
	if err != nil {
		return nil, fmt.Errorf("%s filter_config: %w", filterconfig.AIUpstream, err)
	}
	return newReusingFactory(filterconfig.AIUpstream, h, p.Debug, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return newUpstreamFilter(cfg, fh)
	}, releaseFilter, cfg.close)
}

// CreatePerRoute refuses: ai_upstream has no per-route config.
func (f *aiUpstreamConfigFactory) CreatePerRoute(raw []byte) (any, error) {
	return filterconfig.ParsePerRoute(filterconfig.AIUpstream, raw)
}

// upstreamFilterConfig is shared by every attempt of one cluster's filter.
type upstreamFilterConfig struct {
	backends map[string]*upstreamBackend
	def      *upstreamBackend // for hosts without a backend name; may be nil
	now      func() time.Time // time.Now; tests move it on
}

// upstreamBackend is one named backend: fixed, rebuilt when its key file
// changes, or rebuilt with each access token a service account mints.
type upstreamBackend struct {
	name   string
	fixed  *transform.Backend
	keyed  *secretfile.File[*transform.Backend]
	google *googletoken.Source
	minted atomic.Pointer[transform.Backend] // google's, with the current token
	// The metadata values each attempt writes, boxed once: through the
	// SDK (INFERENCEPOOL_ABI_DIRECT=off), a string made an interface value
	// per call would allocate.
	nameMeta, providerMeta any
}

func newUpstreamFilterConfig(c *filterconfig.AIUpstreamConfig) (*upstreamFilterConfig, error) {
	uc := &upstreamFilterConfig{backends: make(map[string]*upstreamBackend, len(c.Backends)), now: time.Now}
	for i, b := range c.Backends {
		ub := &upstreamBackend{name: b.Name, nameMeta: b.Name}
		var err error
		field := "apiKeyFile"
		switch {
		case b.Config.Schema == transform.SchemaBedrock:
			field = "credentialsFile"
			ub.fixed, ub.keyed, err = bedrockBackend(b, os.Getenv)
		case b.ServiceAccountKeyFile != "":
			field = "serviceAccountKeyFile"
			err = ub.startGoogle(b)
		case b.APIKeyFile == "":
			ub.fixed, err = transform.NewBackend(b.Config, "")
		default:
			ub.keyed, err = secretfile.Open(b.APIKeyFile, func(key string) (*transform.Backend, error) {
				return transform.NewBackend(b.Config, key)
			})
		}
		if err != nil {
			uc.close()
			return nil, fmt.Errorf("backends[%d].%s: %w", i, field, err)
		}
		ub.providerMeta = b.Config.Provider()
		uc.backends[b.Name] = ub
	}
	uc.def = uc.backends[c.DefaultBackend]
	return uc, nil
}

// startGoogle checks the service account key and starts minting tokens
// in the background; each one rebuilds the backend requests use.
func (b *upstreamBackend) startGoogle(c filterconfig.UpstreamBackend) error {
	key, err := os.ReadFile(c.ServiceAccountKeyFile)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", c.ServiceAccountKeyFile, errors.Unwrap(err))
	}
	if _, err := transform.NewBackend(c.Config, ""); err != nil {
		return err
	}
	b.google, err = googletoken.Start(key, func(token string) error {
		be, err := transform.NewBackend(c.Config, token)
		if err == nil {
			b.minted.Store(be)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", c.ServiceAccountKeyFile, err)
	}
	return nil
}

// close stops what the config runs in the background (token refreshes).
func (c *upstreamFilterConfig) close() {
	for _, b := range c.backends {
		if b.google != nil {
			b.google.Close()
		}
	}
}

// backend returns the backend with its current key; a key file that
// changed is read again (at most once per second, by one stream). Nil: a
// service account's backend has no valid token (yet, or any more).
func (b *upstreamBackend) backend(h shared.HttpFilterHandle, now time.Time) *transform.Backend {
	if b.fixed != nil {
		return b.fixed
	}
	if b.google != nil {
		if err := b.google.Err(); err != nil {
			h.Log(shared.LogLevelWarn, "ai_upstream: backend %s: %v", b.name, err)
			return nil
		}
		return b.minted.Load()
	}
	be, err := b.keyed.Load(now)
	if err != nil {
		// The error names the file, never the key.
		h.Log(shared.LogLevelWarn, "ai_upstream: backend %s: %v", b.name, err)
	}
	return be
}

// aiUpstreamFilter handles one attempt.
type aiUpstreamFilter struct {
	shared.EmptyHttpFilter
	cfg *upstreamFilterConfig
	h   shared.HttpFilterHandle
	s   abi.Stream // h's getters, called without the SDK's allocations
	// b makes a hook's callbacks (metadata, filter state, header edits and
	// the reads) in one call from Go; its room is kept across attempts.
	b abi.Batch

	tr      transform.Translator      // nil: the attempt was refused
	trs     transform.Translators     // tr comes from here: kept across attempts
	orig    transform.UpstreamRequest // the original :path and accept-encoding
	sent    bool                      // the request was translated and let go
	ended   bool                      // the response's end was translated
	held    bool                      // the response headers wait for the whole body
	body    *[]byte                   // pooled; the request body, until OnDestroy
	out     []byte                    // response scratch
	replied bool
	// The attempt's request headers as its headers hook found them (an
	// earlier attempt's rewrites included), read in one crossing: the
	// edits skip what would change nothing.
	hdrs   headerSnapshot
	chunks []shared.UnsafeEnvoyBuffer // a body hook's chunks, reused (abi.BodyChunks)
	// origBuf backs orig's strings: ":path\naccept-encoding".
	origBuf []byte
}

func (f *aiUpstreamFilter) OnRequestHeaders(headers shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	// Two calls from Go (abi.Batch): the headers, the host's backend name
	// and the original request; then the metadata, the filter state and,
	// for a request without a body, the header edits.
	b := &f.b
	b.Start(f.s)
	defer b.Clear()
	all := f.hdrs.readIn(b, headers)
	host := b.MetadataString(shared.MetadataSourceTypeHost, filterconfig.HostBackendNamespace, filterconfig.HostBackendKey)
	kept := b.FilterState(originalRequestKey)
	b.Run()
	f.hdrs.fill(b.HeaderEntries(all))
	// The views are copied before any write is added (through the SDK,
	// ops run as they are added).
	ub := f.hostBackend(host)
	origKept := f.keptOriginal(kept)
	be := f.pick(ub)
	if be == nil {
		return shared.HeadersStatusStop
	}
	f.tr = f.trs.For(be)
	if s, ok := f.tr.(transform.UsageSkipper); ok {
		if _, reports := f.tr.(transform.CacheCreationReporter); !reports {
			s.SkipUsage() // publishUsage asks only a CacheCreationReporter; ai_router meters the answer
		}
	}
	f.originalRequest(origKept)
	if endOfStream {
		return headersStatus(f.translate(nil)) // runs b
	}
	b.Run()
	// Held until the body is translated: the codec sends headers as soon
	// as they reach it, with the content-length they have then.
	return shared.HeadersStatusStop
}

// hostBackend is the backend the attempt's host names in its metadata
// (host, read into f.b), or the cluster's default when it names none; nil
// when it names one this filter does not have.
func (f *aiUpstreamFilter) hostBackend(host abi.Op) *upstreamBackend {
	v, ok := f.b.View(host)
	if !ok {
		return f.cfg.def
	}
	ub := f.cfg.backends[v.ToUnsafeString()]
	if ub == nil {
		f.h.Log(shared.LogLevelWarn, "ai_upstream: the upstream host names backend %q, which this filter's config does not have", v.ToString())
	}
	return ub
}

// pick returns ub's backend with its current key. Nil: the attempt was
// answered. The backend and its provider go into the dynamic metadata
// (f.b), where ai_router reads them for its stats (each attempt writes
// them: the last one wins).
func (f *aiUpstreamFilter) pick(ub *upstreamBackend) *transform.Backend {
	if ub == nil {
		f.reply(&transform.Error{Status: 500, Type: "server_error", Code: "backend_not_configured",
			Message: "the gateway has no backend configured for the upstream host it chose"})
		return nil
	}
	be := ub.backend(f.h, f.cfg.now())
	f.b.SetMetadata(transform.CostNamespace, transform.ProviderNameKey, ub.providerMeta)
	f.b.SetMetadata(transform.CostNamespace, transform.BackendNameKey, ub.nameMeta)
	if be == nil {
		// Retriable: the token may come on the next attempt or host.
		f.reply(&transform.Error{Status: 503, Type: "server_error", Code: "credentials_unavailable",
			Message: "the gateway has no access token for the backend it chose yet"})
	}
	return be
}

// keptOriginal copies into origBuf the original request an earlier attempt
// kept in the filter state (kept, read into f.b), and reports whether
// there was one.
func (f *aiUpstreamFilter) keptOriginal(kept abi.Op) bool {
	v, ok := f.b.View(kept)
	if ok {
		f.origBuf = append(f.origBuf[:0], v.ToUnsafeBytes()...)
	}
	return ok
}

// originalRequest notes the :path and accept-encoding from before any
// attempt rewrote them: the first attempt keeps them in the filter state
// (added to f.b), every later one found them there (kept).
func (f *aiUpstreamFilter) originalRequest(kept bool) {
	if !kept {
		f.origBuf = append(f.origBuf[:0], f.hdrs.get(":path")...)
		f.origBuf = append(f.origBuf, '\n')
		// Several accept-encoding headers are one list (RFC 9110): kept as one.
		f.origBuf = f.hdrs.appendList(f.origBuf, "accept-encoding")
		f.b.SetFilterState(originalRequestKey, f.origBuf) // the batch copies it, and Envoy
	}
	// The strings alias origBuf, which no one writes until the filter's
	// next stream.
	f.orig.Path, f.orig.AcceptEncoding, _ = strings.Cut(unsafe.String(unsafe.SliceData(f.origBuf), len(f.origBuf)), "\n")
}

func (f *aiUpstreamFilter) OnRequestBody(body shared.BodyBuffer, endOfStream bool) shared.BodyStatus {
	if f.sent || f.tr == nil {
		return shared.BodyStatusContinue
	}
	if !endOfStream {
		if bodySizeSoFar(f.h, body) > upstreamMaxBody {
			f.reply(transform.BodyTooLarge(upstreamMaxBody))
			return shared.BodyStatusStopNoBuffer
		}
		return shared.BodyStatusStopAndBuffer
	}
	parts := newBodyParts(f.h, body, f.chunks[:0])
	f.chunks = parts.chunks
	defer clear(f.chunks) // no view into Envoy's memory outlives the hook
	if parts.size() > upstreamMaxBody {
		f.reply(transform.BodyTooLarge(upstreamMaxBody))
		return shared.BodyStatusStopNoBuffer
	}
	f.b.Start(f.s)
	defer f.b.Clear()
	if f.translate(&parts) {
		return shared.BodyStatusContinue
	}
	return shared.BodyStatusStopNoBuffer
}

func (f *aiUpstreamFilter) OnRequestTrailers(shared.HeaderMap) shared.TrailersStatus {
	if f.sent || f.tr == nil {
		return shared.TrailersStatusContinue
	}
	parts := newBodyParts(f.h, nil, f.chunks[:0])
	f.chunks = parts.chunks
	defer clear(f.chunks)
	f.b.Start(f.s)
	defer f.b.Clear()
	if f.translate(&parts) {
		return shared.TrailersStatusContinue
	}
	return shared.TrailersStatusStop
}

// translate hands the whole request to the translator, applies every
// header it owns (set from the original values, over whatever an earlier
// attempt left in the shared map) and the new body. It reports whether the
// request goes on. parts is nil for a request without a body. The header
// edits go into f.b, after what the hook added before, and run with it
// (one call from Go), before the body is replaced.
func (f *aiUpstreamFilter) translate(parts *bodyParts) bool {
	var body []byte
	if parts != nil {
		f.body = getBody(int(parts.size()))
		*f.body = parts.appendTo(*f.body)
		body = *f.body
	}
	req := f.orig
	req.Body = body
	out, err := f.tr.TranslateRequest(req)
	if err != nil {
		f.replyError(err)
		return false
	}
	applyChangingEdits(&f.b, f.h.RequestHeaders(), &f.hdrs, out.Headers)
	f.b.Run()
	if parts != nil && !sameBytes(out.Body, body) {
		parts.replace(out.Body)
	}
	f.sent = true
	return true
}

// applyChangingEdits adds to b the edits (set Name to Value, or remove
// Name) to headers, which before holds as read in this hook (the
// request's: in its headers hook), skipping the edits that would change nothing: removing a
// header that is not there, setting a value again. A translation owns
// every provider header (it removes all those it does not set), so most of
// its request edits are of that kind, and each is a crossing into Envoy.
// A name edited twice is edited both times: before no longer tells.
func applyChangingEdits(b *abi.Batch, h shared.HeaderMap, before *headerSnapshot, edits []transform.HeaderEdit) {
	for i, e := range edits {
		switch {
		case editedBefore(edits[:i], e.Name):
		case e.Remove && before.count(e.Name) == 0:
			continue
		case !e.Remove && before.only(e.Name, e.Value):
			continue
		}
		if e.Remove {
			b.RemoveHeader(h, e.Name)
		} else {
			b.SetHeader(h, e.Name, e.Value) // the batch copies the strings (the translator's memory)
		}
	}
}

func editedBefore(edits []transform.HeaderEdit, name string) bool {
	for _, e := range edits {
		if e.Name == name {
			return true
		}
	}
	return false
}

// sameBytes reports whether a and b are the same slice (the translator
// returns the request's body itself when it keeps it).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (f *aiUpstreamFilter) OnResponseHeaders(headers shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	if !f.sent {
		return shared.HeadersStatusContinue
	}
	// The request's snapshot is done with (the request was sent): the
	// response's headers take its place, read in one crossing.
	f.hdrs.read(headers)
	status, _ := strconv.Atoi(f.hdrs.get(":status"))
	rh, err := f.tr.TranslateResponseHeaders(transform.UpstreamResponse{
		Status:          status,
		ContentType:     f.hdrs.get("content-type"),
		ContentEncoding: f.hdrs.get("content-encoding"),
	})
	if err != nil {
		f.sent = false // nothing more of this response goes through
		f.replyError(err)
		return shared.HeadersStatusStop
	}
	// The edits, and what the hook writes after them, in one call from Go.
	b := &f.b
	b.Start(f.s)
	defer b.Clear()
	if rh.Status != status && rh.Status > 0 {
		// The router decides on this status: a provider's "overloaded" is
		// retried like OpenAI's 503.
		b.SetHeader(headers, ":status", strconv.Itoa(rh.Status))
	}
	applyChangingEdits(b, headers, &f.hdrs, rh.Headers)
	if p, ok := f.tr.(transform.BodyPasser); ok && p.PassesBody() {
		// Nothing to translate or read: the body hooks need not look at
		// it (no slices to read, no copy), and its end has nothing to add.
		f.ended = true
		f.publishUsage()
		b.Run()
		return shared.HeadersStatusContinue
	}
	if rh.Whole && !endOfStream {
		// The body is translated whole: the status it ends with (an error
		// inside a 200) goes out with these headers, and the router decides
		// on it.
		f.held = true
		b.Run()
		return shared.HeadersStatusStop
	}
	if endOfStream {
		// No body hook follows: what the translation makes of an empty
		// body (an error body for a bare error status) goes out now, and
		// Envoy sends it after the headers (addEncodedData in the headers
		// hook: the headers lose their end of stream).
		f.finish() // runs b
	}
	b.Run()
	return shared.HeadersStatusContinue
}

// finish ends the response's translation when the body hook never saw its
// end (headers or trailers ended the stream): the translator's last bytes
// go to the buffered response body, which Envoy sends on before the
// trailers, or after headers that ended the stream. What it writes besides
// goes into f.b (after what the hook added: those run first), and runs.
func (f *aiUpstreamFilter) finish() {
	if f.ended {
		f.b.Run()
		return
	}
	out, _ := f.tr.TranslateResponseBody(f.out[:0], nil, true)
	f.out = out
	if len(out) > 0 {
		f.b.Run() // the header edits before the body, in order
		f.h.BufferedResponseBody().Append(out)
	}
	f.ended = true
	f.publishUsage()
	f.releaseHeaders()
	f.b.Run()
}

// publishUsage adds to f.b what ai_router cannot read from the
// OpenAI-shaped answer: the prompt-cache writes of a provider that reports
// them apart.
func (f *aiUpstreamFilter) publishUsage() {
	if r, ok := f.tr.(transform.CacheCreationReporter); ok {
		if _, has := f.tr.Usage(); has {
			f.b.SetMetadataUint(transform.CostNamespace, transform.CacheCreationInputTokensKey, r.CacheCreationInputTokens())
		}
	}
}

func (f *aiUpstreamFilter) OnResponseBody(body shared.BodyBuffer, endOfStream bool) shared.BodyStatus {
	if !f.sent || f.ended {
		return shared.BodyStatusContinue
	}
	f.chunks = abi.BodyChunks(body, f.chunks[:0])
	defer clear(f.chunks)
	chunks := f.chunks
	out, changed := f.out[:0], false
	if len(chunks) == 0 {
		out, changed = f.tr.TranslateResponseBody(out, nil, endOfStream)
	}
	for i, c := range chunks {
		var ch bool
		out, ch = f.tr.TranslateResponseBody(out, c.ToUnsafeBytes(), endOfStream && i == len(chunks)-1)
		changed = changed || ch
	}
	f.out = out
	if changed {
		// out is a copy: the views die with the drain.
		body.Drain(body.GetSize())
		if len(out) > 0 {
			body.Append(out)
		}
	}
	if endOfStream {
		f.ended = true
		// The metadata and the final status in one call from Go.
		f.b.Start(f.s)
		f.publishUsage()
		f.releaseHeaders()
		f.b.Run()
		f.b.Clear()
	} else if f.held {
		return shared.BodyStatusStopAndBuffer // drained: nothing piles up
	}
	return shared.BodyStatusContinue
}

// releaseHeaders adds to f.b the held response headers' final status,
// when the whole body's translation changed it.
func (f *aiUpstreamFilter) releaseHeaders() {
	if !f.held {
		return
	}
	f.held = false
	if r, ok := f.tr.(transform.FinalStatusReporter); ok {
		if st := r.FinalStatus(); st > 0 {
			f.b.SetHeader(f.h.ResponseHeaders(), ":status", strconv.Itoa(st))
		}
	}
}

// OnResponseTrailers ends a response whose body frames carried no end of
// stream (HTTP/2 with trailers): a JSON answer held whole, a stream cut
// short, go out now.
func (f *aiUpstreamFilter) OnResponseTrailers(shared.HeaderMap) shared.TrailersStatus {
	if f.sent {
		f.b.Start(f.s)
		f.finish()
		f.b.Clear()
	}
	return shared.TrailersStatusContinue
}

func (f *aiUpstreamFilter) OnDestroy() {
	putBody(f.body)
	f.body = nil
}

func (f *aiUpstreamFilter) replyError(err error) {
	e, ok := err.(*transform.Error)
	if !ok {
		e = &transform.Error{Status: 500, Type: "server_error", Code: "internal_error", Message: "the request could not be translated"}
	}
	f.reply(e)
}

// reply answers the attempt locally: Envoy sends it through the downstream
// chain and never retries it. What the hook added to f.b runs first.
func (f *aiUpstreamFilter) reply(e *transform.Error) {
	f.b.Run()
	if f.replied {
		return
	}
	f.replied = true
	code := e.Code
	if code == "" {
		code = e.Type
	}
	f.h.SendLocalResponse(uint32(e.Status), abi.JSONHeaders, e.Body(), "ai_upstream_"+code)
}
