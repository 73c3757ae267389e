package main

import (
	"fmt"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

// newFactory defines the stats every filter has, then returns the factory
// that builds guarded (and, in tests, debug-wrapped) filters.
func newFactory(name string, h shared.HttpFilterConfigHandle, dbg filterconfig.Debug, build abi.NewFilterFunc, destroy func()) (shared.HttpFilterFactory, error) {
	return newReusingFactory(name, h, dbg, build, nil, destroy)
}

// newReusingFactory is newFactory whose filters, once their stream is
// destroyed without a panic, go to release for reuse (see abi.Factory).
func newReusingFactory(name string, h shared.HttpFilterConfigHandle, dbg filterconfig.Debug, build abi.NewFilterFunc,
	release func(shared.HttpFilter), destroy func()) (shared.HttpFilterFactory, error) {
	panics, res := h.DefineCounter(name + ".panics")
	if res != shared.MetricsSuccess {
		return nil, fmt.Errorf("%s: defining counter %s.panics failed (result %d)", name, name, res)
	}
	barrier := &abi.Barrier{Filter: name, PanicCounter: panics}
	return &abi.Factory{Barrier: barrier, NewFilter: withDebug(build, dbg, barrier), Release: release, Destroy: destroy}, nil
}
