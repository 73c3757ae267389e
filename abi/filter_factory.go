package abi

import (
	"sync"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// NewFilterFunc builds one filter instance for one stream.
type NewFilterFunc func(h shared.HttpFilterHandle) shared.HttpFilter

// Factory is an HttpFilterFactory whose filters all run behind the barrier,
// including their construction, which the SDK calls without a recover.
type Factory struct {
	Barrier   *Barrier
	NewFilter NewFilterFunc
	// Release (optional) takes back a filter whose stream ended with no
	// panic, after its OnDestroy returned: NewFilter may hand it to a later
	// stream. Nothing calls the filter after that (Envoy calls no hook of a
	// destroyed filter), so a pool of filters is safe across workers.
	Release func(shared.HttpFilter)
	Destroy func() // optional: releases what the config holds
}

// guards are reused the same way: one allocation less per filter and
// stream.
var guards = sync.Pool{New: func() any { return new(guardedFilter) }}

func (f *Factory) Create(h shared.HttpFilterHandle) (out shared.HttpFilter) {
	defer func() {
		if r := recover(); r != nil {
			// A filter that could not be built is counted and logged here,
			// once, and answers 500 at its first request hook.
			g := &guardedFilter{barrier: f.Barrier, handle: h, inner: &shared.EmptyHttpFilter{}}
			g.caught("create", r, false)
			g.poisoned = false
			g.inner = &unbuiltFilter{g: g}
			out = g
		}
	}()
	inner := f.NewFilter(h)
	g := guards.Get().(*guardedFilter)
	*g = guardedFilter{barrier: f.Barrier, handle: h, inner: inner, release: f.Release}
	return g
}

func (f *Factory) OnDestroy() {
	if f.Destroy != nil {
		defer func() { _ = recover() }()
		f.Destroy()
	}
}

// unbuiltFilter stands in for a filter whose construction panicked: the
// first request hook answers 500 and poisons the stream, so that no other
// hook reaches it. Reporting the panic again there would count it twice.
type unbuiltFilter struct {
	shared.EmptyHttpFilter
	g *guardedFilter
}

func (u *unbuiltFilter) OnRequestHeaders(shared.HeaderMap, bool) shared.HeadersStatus {
	u.g.poisoned = true
	u.g.reply() // runs inside g's barrier, like any hook
	return shared.HeadersStatusStop
}
