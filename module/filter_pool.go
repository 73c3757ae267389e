package main

import (
	"sync"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
)

// The per-stream filters of ai_router, endpoint_picker and ai_upstream are
// reused: a stream's filter goes back to its pool once Envoy destroyed it
// without a panic (abi.Factory.Release), and a later stream, on any worker,
// takes it.
// Each new* below overwrites every field with a composite literal, so a
// field added later starts zero like in a new filter; only buffers whose
// contents are dead (length 0) are kept, up to maxKeptBuffer each.
var (
	routerFilters   = sync.Pool{New: func() any { return new(aiRouterFilter) }}
	pickerFilters   = sync.Pool{New: func() any { return new(endpointPickerFilter) }}
	upstreamFilters = sync.Pool{New: func() any { return new(aiUpstreamFilter) }}
)

// maxKeptBuffer caps the buffers a pooled filter keeps for its next stream.
const maxKeptBuffer = 64 << 10

func newRouterFilter(cfg *routerFilterConfig, h shared.HttpFilterHandle) *aiRouterFilter {
	f := routerFilters.Get().(*aiRouterFilter)
	f.reset(cfg, h)
	return f
}

// reset makes f a new stream's filter.
func (f *aiRouterFilter) reset(cfg *routerFilterConfig, h shared.HttpFilterHandle) {
	b := f.b.Keep(abi.NewStream(h))
	*f = aiRouterFilter{cfg: cfg, h: h, s: b.Stream(), restored: keep(f.restored), stripped: keep(f.stripped), hdrs: keepSnapshot(f.hdrs),
		chunks: keepChunks(f.chunks), backendBuf: keep(f.backendBuf), ownMeter: f.ownMeter, b: b}
	if cfg.picker != nil { // ai_router picks too: endpoint_picker's part, from its pool
		f.pick = newPickerFilter(cfg.picker, h)
	}
}

func newPickerFilter(cfg *pickerFilterConfig, h shared.HttpFilterHandle) *endpointPickerFilter {
	f := pickerFilters.Get().(*endpointPickerFilter)
	f.reset(cfg, h)
	return f
}

// reset makes f a new stream's filter.
func (f *endpointPickerFilter) reset(cfg *pickerFilterConfig, h shared.HttpFilterHandle) {
	subset := f.req.Subset[:0]
	if cap(subset) > 64 {
		subset = nil
	}
	b := f.b.Keep(abi.NewStream(h))
	*f = endpointPickerFilter{cfg: cfg, h: h, s: b.Stream(), body: keep(f.body), req: picker.Request{Subset: subset}, chunks: keepChunks(f.chunks), b: b}
}

func newUpstreamFilter(cfg *upstreamFilterConfig, h shared.HttpFilterHandle) *aiUpstreamFilter {
	f := upstreamFilters.Get().(*aiUpstreamFilter)
	f.reset(cfg, h)
	return f
}

// reset makes f a new attempt's filter.
func (f *aiUpstreamFilter) reset(cfg *upstreamFilterConfig, h shared.HttpFilterHandle) {
	b := f.b.Keep(abi.NewStream(h))
	*f = aiUpstreamFilter{cfg: cfg, h: h, s: b.Stream(), b: b, trs: f.trs, out: keep(f.out), hdrs: keepSnapshot(f.hdrs), origBuf: keep(f.origBuf),
		chunks: keepChunks(f.chunks)}
}

// releaseFilter takes back a filter whose stream is over (nothing refers
// to it any more). A debug wrapper (test builds) is not reused.
func releaseFilter(x shared.HttpFilter) {
	switch f := x.(type) {
	case *aiRouterFilter:
		if f.pick != nil {
			releaseFilter(f.pick)
		}
		*f = aiRouterFilter{restored: keep(f.restored), stripped: keep(f.stripped), hdrs: keepSnapshot(f.hdrs), chunks: keepChunks(f.chunks),
			backendBuf: keep(f.backendBuf), ownMeter: f.ownMeter, b: f.b.Keep(abi.Stream{})} // let go of the stream
		routerFilters.Put(f)
	case *endpointPickerFilter:
		*f = endpointPickerFilter{body: keep(f.body), req: picker.Request{Subset: f.req.Subset[:0]}, chunks: keepChunks(f.chunks), b: f.b.Keep(abi.Stream{})}
		pickerFilters.Put(f)
	case *aiUpstreamFilter:
		f.trs.Release() // no backend, key or request of this attempt stays in the pool
		*f = aiUpstreamFilter{trs: f.trs, out: keep(f.out), hdrs: keepSnapshot(f.hdrs), origBuf: keep(f.origBuf), chunks: keepChunks(f.chunks),
			b: f.b.Keep(abi.Stream{})}
		upstreamFilters.Put(f)
	}
}

func keep(b []byte) []byte {
	if cap(b) > maxKeptBuffer {
		return nil
	}
	return b[:0]
}

// keepChunks keeps a chunk list's room (views are cleared by each hook).
func keepChunks(c []shared.UnsafeEnvoyBuffer) []shared.UnsafeEnvoyBuffer {
	if cap(c) > 64 {
		return nil
	}
	return c[:0]
}
