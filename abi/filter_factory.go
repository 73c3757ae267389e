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
			// A filter that could not be built answers 500 at its first hook.
			g := &guardedFilter{barrier: f.Barrier, handle: h, inner: &shared.EmptyHttpFilter{}}
			g.caught("create", r, false)
			g.poisoned = false
			g.inner = &panicFilter{r: r}
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

// panicFilter re-raises a construction panic at the first request hook, so
// that the barrier answers it there with a 500.
type panicFilter struct {
	shared.EmptyHttpFilter
	r any
}

func (p *panicFilter) OnRequestHeaders(shared.HeaderMap, bool) shared.HeadersStatus { panic(p.r) }
