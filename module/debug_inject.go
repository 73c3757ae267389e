//go:build inferencepool_debug

package main

import (
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

// withDebug wraps each new filter in what the config's test-only "debug"
// object asks for (the test build only: filterconfig.DebugBuildTag).
func withDebug(build abi.NewFilterFunc, dbg filterconfig.Debug, barrier *abi.Barrier) abi.NewFilterFunc {
	if !dbg.Enabled() {
		return build
	}
	return func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return &debugFilter{HttpFilter: build(fh), cfg: dbg, handle: fh, barrier: barrier}
	}
}

// debugFilter applies filterconfig.Debug around the real filter.
type debugFilter struct {
	shared.HttpFilter
	cfg     filterconfig.Debug
	handle  shared.HttpFilterHandle
	barrier *abi.Barrier
	async   bool // the async step has started
}

func (d *debugFilter) maybePanic(hook string) {
	if d.cfg.PanicIn == hook {
		panic("injected panic in " + hook)
	}
}

func (d *debugFilter) OnRequestHeaders(h shared.HeaderMap, eos bool) shared.HeadersStatus {
	d.maybePanic("request_headers")
	st := d.HttpFilter.OnRequestHeaders(h, eos)
	if d.cfg.AsyncRequestHeaders && st == shared.HeadersStatusContinue {
		d.goAsync()
		return shared.HeadersStatusStopAllAndBuffer
	}
	return st
}

func (d *debugFilter) OnRequestBody(b shared.BodyBuffer, eos bool) shared.BodyStatus {
	d.maybePanic("request_body")
	st := d.HttpFilter.OnRequestBody(b, eos)
	// A filter that stopped its headers (to read the body) lets the request
	// go at the end of the body: the async step happens there instead.
	if d.cfg.AsyncRequestHeaders && !d.async && eos && st == shared.BodyStatusContinue {
		d.goAsync()
		return shared.BodyStatusStopAndBuffer
	}
	return st
}

// goAsync finishes on another goroutine and comes back through the
// scheduler: only then may the handle be touched again.
func (d *debugFilter) goAsync() {
	d.async = true
	sched := d.handle.GetScheduler()
	handle := d.handle
	go func() {
		time.Sleep(time.Millisecond)
		// Scheduled callbacks run behind the barrier too.
		sched.Schedule(d.barrier.GuardScheduled(handle, func() {
			d.maybePanic("scheduled")
			handle.RequestHeaders().Set("x-inferencepool-async", "done")
			handle.ContinueRequest()
		}))
	}()
}

func (d *debugFilter) OnResponseHeaders(h shared.HeaderMap, eos bool) shared.HeadersStatus {
	d.maybePanic("response_headers")
	return d.HttpFilter.OnResponseHeaders(h, eos)
}

func (d *debugFilter) OnResponseBody(b shared.BodyBuffer, eos bool) shared.BodyStatus {
	d.maybePanic("response_body")
	return d.HttpFilter.OnResponseBody(b, eos)
}
