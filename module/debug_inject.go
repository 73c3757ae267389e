//go:build inferencepool_debug

package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
)

// withDebug wraps each new filter in what the config's test-only "debug"
// object asks for (the test build only: filterconfig.DebugBuildTag).
func withDebug(build abi.NewFilterFunc, dbg filterconfig.Debug, barrier *abi.Barrier) abi.NewFilterFunc {
	if !dbg.Enabled() {
		return build
	}
	if dbg.PanicIn == "gossip" {
		collector.SetGossipReceiveHook(func(b []byte) {
			if bytes.HasPrefix(b, []byte("PANIC")) {
				panic("injected panic in gossip")
			}
		})
	}
	if dbg.PanicIn == "probe" {
		hook := func() { panic("injected panic in a probe's callback") }
		probeAnsweredHook.Store(&hook)
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
	if d.cfg.BatchProbe {
		batchProbe(d.handle, h)
	}
	for k, v := range d.cfg.SeedFilterState {
		d.handle.SetFilterState(k, []byte(v))
	}
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

// batchProbeNS is the dynamic metadata namespace batchProbe writes.
const batchProbeNS = "inferencepool.batch_probe"

// batchProbe runs one abi.Batch with every kind of op on the request
// headers h: writes, reads that see them, a counter and a histogram that
// do not exist and one with the wrong number of tags (Envoy refuses
// each), a value longer than the batch's first room. A second batch
// writes what the first read and each op's result into dynamic metadata.
func batchProbe(fh shared.HttpFilterHandle, h shared.HeaderMap) {
	var b abi.Batch
	b.Start(abi.NewStream(fh))
	long := strings.Repeat("long-value/", 1000) // 11 KB: past any first room
	b.SetHeader(h, "x-batch-probe", "set")
	b.RemoveHeader(h, "x-batch-remove")
	got := b.HeaderValue(h, "x-batch-probe")
	gone := b.HeaderValue(h, "x-batch-remove")
	b.SetMetadataString(batchProbeNS, "long", long)
	b.SetMetadataNumber(batchProbeNS, "number", 2.5)
	b.SetMetadataUint(batchProbeNS, "uint", 1<<40)
	readLong := b.MetadataString(shared.MetadataSourceTypeDynamic, batchProbeNS, "long")
	readNum := b.MetadataNumber(shared.MetadataSourceTypeDynamic, batchProbeNS, "number")
	missing := b.MetadataString(shared.MetadataSourceTypeDynamic, batchProbeNS, "missing")
	list := b.MetadataListSize(shared.MetadataSourceTypeDynamic, "envoy.lb.subset_hint", "x-gateway-destination-endpoint-subset")
	fs := b.SetFilterState("inferencepool.batch_probe", []byte("state"))
	readFS := b.FilterState("inferencepool.batch_probe")
	conn := b.AttributeNumber(shared.AttributeIDConnectionId)
	path := b.AttributeString(shared.AttributeIDRequestPath)
	counter := b.IncrementCounter(shared.MetricID(9999), 1)
	hist := b.RecordHistogram(shared.MetricID(9999), 7, "a", "b")
	tags := b.IncrementCounter(shared.MetricID(0), 1, "one", "two", "three") // counter 0 has no or two tags, never three
	roomy := b.Headers(h, make([][2]shared.UnsafeEnvoyBuffer, 0, 64))        // after the writes: sees them
	b.Run()
	entries := func(op abi.Op) string {
		var names []string
		for _, e := range b.HeaderEntries(op) {
			if e[0].ToString() != "x-request-id" { // random
				names = append(names, e[0].ToString()+"="+e[1].ToString())
			}
		}
		return strings.Join(names, ",")
	}
	headers := entries(roomy)

	view := func(op abi.Op) string {
		v, ok := b.View(op)
		return fmt.Sprintf("%v:%d:%.20s", ok, v.Len, v.ToString())
	}
	number := func(op abi.Op) string {
		n, ok := b.Number(op)
		return fmt.Sprintf("%v:%g", ok, n)
	}
	connOK := func(op abi.Op) bool { // its value depends on the streams before
		_, ok := b.Number(op)
		return ok
	}
	results := fmt.Sprintf("header=%s gone=%s long=%s number=%s missing=%s list=%s fs=%v readfs=%s conn=%v path=%s counter=%d histogram=%d tags=%d ops=%d",
		view(got), view(gone), view(readLong), number(readNum), view(missing), number(list), b.OK(fs), view(readFS),
		connOK(conn), view(path), b.Result(counter), b.Result(hist), b.Result(tags), b.Len())
	calls := b.Calls() // 1 direct, 0 through the SDK
	// A header read with no room: its entries are read in a call of
	// their own, after the batch's, and a header write after it runs it
	// first: three calls direct.
	b.Start(abi.NewStream(fh))
	tight := b.Headers(h, nil)
	b.SetHeader(h, "x-batch-after", "read")
	b.Run()
	headers += " | " + entries(tight)
	tightCalls := b.Calls() - calls
	b.Start(abi.NewStream(fh))
	b.SetMetadataString(batchProbeNS, "results", results)
	b.SetMetadataString(batchProbeNS, "headers", headers)
	b.SetMetadataUint(batchProbeNS, "calls", uint64(calls))
	b.SetMetadataUint(batchProbeNS, "tightCalls", uint64(tightCalls))
	b.Run()
	b.Start(abi.NewStream(fh))
	b.Run() // zero ops: no call
}
