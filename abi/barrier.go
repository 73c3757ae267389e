package abi

import (
	"fmt"
	"runtime/debug"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/openaierror"
)

// PanicDetail is the response code detail Envoy logs for a reply sent by the
// barrier; access logs can match on it.
const PanicDetail = "inferencepool_panic"

// Barrier turns panics in hooks into a counter and, on the request path, a
// 500 local reply. A panic that reaches the SDK's exports kills Envoy.
type Barrier struct {
	Filter       string          // filter name, for logs
	PanicCounter shared.MetricID // defined at config time
}

// Guard wraps a filter so that every hook runs behind the barrier.
func (b *Barrier) Guard(h shared.HttpFilterHandle, f shared.HttpFilter) shared.HttpFilter {
	return &guardedFilter{barrier: b, handle: h, inner: f}
}

// guardedFilter forwards each hook to inner until inner panics once. After
// that inner's state is suspect, so it is never called again: the request
// path was already answered with a 500, and the response path passes through
// untouched so that the client still gets what the upstream produced.
type guardedFilter struct {
	barrier  *Barrier
	handle   shared.HttpFilterHandle
	inner    shared.HttpFilter
	poisoned bool
	replied  bool
	release  func(shared.HttpFilter) // Factory.Release; nil: not reused
}

func (g *guardedFilter) caught(hook string, r any, requestPath bool) {
	g.poisoned = true
	defer func() { _ = recover() }() // reporting must not panic either
	g.handle.IncrementCounterValue(g.barrier.PanicCounter, 1)
	g.handle.Log(shared.LogLevelError, "%s: panic in %s: %v\n%s", g.barrier.Filter, hook, r, debug.Stack())
	if requestPath {
		g.reply()
	}
}

// reply answers the stream with a 500, once.
func (g *guardedFilter) reply() {
	if g.replied {
		return
	}
	g.replied = true
	msg := fmt.Sprintf("internal error in filter %s", g.barrier.Filter)
	g.handle.SendLocalResponse(500, JSONHeaders, openaierror.Body(msg, "internal_error", "", "internal_error"), PanicDetail)
}

func (g *guardedFilter) OnRequestHeaders(headers shared.HeaderMap, endOfStream bool) (s shared.HeadersStatus) {
	if g.poisoned {
		return shared.HeadersStatusContinue
	}
	defer func() {
		if r := recover(); r != nil {
			g.caught("request headers", r, true)
			s = shared.HeadersStatusStop
		}
	}()
	return g.inner.OnRequestHeaders(headers, endOfStream)
}

func (g *guardedFilter) OnRequestBody(body shared.BodyBuffer, endOfStream bool) (s shared.BodyStatus) {
	if g.poisoned {
		if g.replied {
			return shared.BodyStatusStopNoBuffer
		}
		return shared.BodyStatusContinue
	}
	defer func() {
		if r := recover(); r != nil {
			g.caught("request body", r, true)
			s = shared.BodyStatusStopNoBuffer
		}
	}()
	return g.inner.OnRequestBody(body, endOfStream)
}

func (g *guardedFilter) OnRequestTrailers(trailers shared.HeaderMap) (s shared.TrailersStatus) {
	if g.poisoned {
		if g.replied {
			return shared.TrailersStatusStop
		}
		return shared.TrailersStatusContinue
	}
	defer func() {
		if r := recover(); r != nil {
			g.caught("request trailers", r, true)
			s = shared.TrailersStatusStop
		}
	}()
	return g.inner.OnRequestTrailers(trailers)
}

func (g *guardedFilter) OnResponseHeaders(headers shared.HeaderMap, endOfStream bool) (s shared.HeadersStatus) {
	if g.poisoned {
		return shared.HeadersStatusContinue
	}
	defer func() {
		if r := recover(); r != nil {
			g.caught("response headers", r, false)
			s = shared.HeadersStatusContinue
		}
	}()
	return g.inner.OnResponseHeaders(headers, endOfStream)
}

func (g *guardedFilter) OnResponseBody(body shared.BodyBuffer, endOfStream bool) (s shared.BodyStatus) {
	if g.poisoned {
		return shared.BodyStatusContinue
	}
	defer func() {
		if r := recover(); r != nil {
			g.caught("response body", r, false)
			s = shared.BodyStatusContinue
		}
	}()
	return g.inner.OnResponseBody(body, endOfStream)
}

func (g *guardedFilter) OnResponseTrailers(trailers shared.HeaderMap) (s shared.TrailersStatus) {
	if g.poisoned {
		return shared.TrailersStatusContinue
	}
	defer func() {
		if r := recover(); r != nil {
			g.caught("response trailers", r, false)
			s = shared.TrailersStatusContinue
		}
	}()
	return g.inner.OnResponseTrailers(trailers)
}

// OnStreamComplete still reaches a poisoned filter: it releases what the
// filter holds (in-flight counts, budgets) and must run at most once.
func (g *guardedFilter) OnStreamComplete() {
	defer func() {
		if r := recover(); r != nil {
			g.caught("stream complete", r, false)
		}
	}()
	g.inner.OnStreamComplete()
}

func (g *guardedFilter) OnDestroy() {
	defer func() {
		if r := recover(); r != nil {
			g.caught("destroy", r, false)
		}
	}()
	g.inner.OnDestroy()
	if g.release == nil || g.poisoned {
		return // a filter that panicked is suspect: never reused
	}
	// The stream is over: the filter and this guard serve later streams.
	g.release(g.inner)
	*g = guardedFilter{}
	guards.Put(g)
}

// GuardScheduled runs a scheduled callback behind the barrier: a panic there
// would unwind through envoy_dynamic_module_on_http_filter_scheduled. The
// callback was to resume the stream, which now never happens, so the panic
// is answered with a 500 rather than leaving the request hanging.
func (b *Barrier) GuardScheduled(h shared.HttpFilterHandle, fn func()) func() {
	return func() {
		defer func() {
			if r := recover(); r != nil {
				defer func() { _ = recover() }()
				h.IncrementCounterValue(b.PanicCounter, 1)
				h.Log(shared.LogLevelError, "%s: panic in scheduled callback: %v\n%s", b.Filter, r, debug.Stack())
				msg := fmt.Sprintf("internal error in filter %s", b.Filter)
				h.SendLocalResponse(500, JSONHeaders, openaierror.Body(msg, "internal_error", "", "internal_error"), PanicDetail)
			}
		}()
		fn()
	}
}
