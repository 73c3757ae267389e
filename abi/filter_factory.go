package abi

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// NewFilterFunc builds one filter instance for one stream.
type NewFilterFunc func(h shared.HttpFilterHandle) shared.HttpFilter

// Factory is an HttpFilterFactory whose filters all run behind the barrier,
// including their construction, which the SDK calls without a recover.
type Factory struct {
	Barrier   *Barrier
	NewFilter NewFilterFunc
	Destroy   func() // optional: releases what the config holds
}

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
	return f.Barrier.Guard(h, f.NewFilter(h))
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
