package main

import (
	"fmt"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// debugConfig is the test-only "debug" object any filter_config may carry.
// It lets tests drive failure and async paths through the real library; a
// production config leaves it out.
type debugConfig struct {
	// PanicIn names a hook that panics on every stream: request_headers,
	// request_body, response_headers or response_body.
	PanicIn string `json:"panicIn"`
	// AsyncRequestHeaders holds each request in its headers hook until a
	// goroutine has scheduled work back onto the stream's worker thread.
	AsyncRequestHeaders bool `json:"asyncRequestHeaders"`
}

var panicHooks = map[string]bool{"": true, "request_headers": true, "request_body": true, "response_headers": true, "response_body": true}

// splitDebug removes the "debug" object from a filter_config and parses it.
func splitDebug(filter string, raw []byte) (debugConfig, []byte, error) {
	raw = normalizeConfig(raw)
	var d debugConfig
	dbg := gjson.GetBytes(raw, "debug")
	if !dbg.Exists() {
		return d, raw, nil
	}
	if err := decodeStrict(filter, []byte(dbg.Raw), &d); err != nil {
		return d, nil, fmt.Errorf("%s (in field \"debug\")", err)
	}
	if !panicHooks[d.PanicIn] {
		return d, nil, fmt.Errorf("%s filter_config: field \"debug.panicIn\": unknown hook %q", filter, d.PanicIn)
	}
	rest, err := sjson.DeleteBytes(raw, "debug")
	if err != nil {
		return d, nil, fmt.Errorf("%s filter_config: %v", filter, err)
	}
	return d, rest, nil
}

func (d debugConfig) enabled() bool { return d.PanicIn != "" || d.AsyncRequestHeaders }

// debugFilter applies debugConfig around the real filter.
type debugFilter struct {
	shared.HttpFilter
	cfg    debugConfig
	handle shared.HttpFilterHandle
}

func (d *debugFilter) maybePanic(hook string) {
	if d.cfg.PanicIn == hook {
		panic("injected panic in " + hook)
	}
}

func (d *debugFilter) OnRequestHeaders(h shared.HeaderMap, eos bool) shared.HeadersStatus {
	d.maybePanic("request_headers")
	st := d.HttpFilter.OnRequestHeaders(h, eos)
	if !d.cfg.AsyncRequestHeaders || st != shared.HeadersStatusContinue {
		return st
	}
	// Work finishes on another goroutine and comes back through the
	// scheduler: only then may the handle be touched again.
	sched := d.handle.GetScheduler()
	handle := d.handle
	go func() {
		time.Sleep(time.Millisecond)
		sched.Schedule(func() {
			handle.RequestHeaders().Set("x-inferencepool-async", "done")
			handle.ContinueRequest()
		})
	}()
	return shared.HeadersStatusStopAllAndBuffer
}

func (d *debugFilter) OnRequestBody(b shared.BodyBuffer, eos bool) shared.BodyStatus {
	d.maybePanic("request_body")
	return d.HttpFilter.OnRequestBody(b, eos)
}

func (d *debugFilter) OnResponseHeaders(h shared.HeaderMap, eos bool) shared.HeadersStatus {
	d.maybePanic("response_headers")
	return d.HttpFilter.OnResponseHeaders(h, eos)
}

func (d *debugFilter) OnResponseBody(b shared.BodyBuffer, eos bool) shared.BodyStatus {
	d.maybePanic("response_body")
	return d.HttpFilter.OnResponseBody(b, eos)
}
