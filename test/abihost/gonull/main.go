// Command gonull is a dynamic module built with the pinned Go SDK whose
// filters do nothing: every hook returns Continue without a callback, as
// test/abihost/nullmodule.c does in C. abihost --bench with it measures
// what the SDK's entry into Go costs per exchange (filter creation and
// destruction, each hook's crossing from C into Go and back), the floor
// under BenchmarkABIRoundTrip's ns/req that only the SDK could lower.
// Any filter_name is accepted.
package main

import (
	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi" // the C exports
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

type configFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func (*configFactory) Create(shared.HttpFilterConfigHandle, []byte) (shared.HttpFilterFactory, error) {
	return &filterFactory{}, nil
}

type filterFactory struct{ shared.EmptyHttpFilterFactory }

func (*filterFactory) Create(shared.HttpFilterHandle) shared.HttpFilter {
	return &shared.EmptyHttpFilter{}
}

func init() {
	f := &configFactory{}
	sdk.RegisterHttpFilterConfigFactories(map[string]shared.HttpFilterConfigFactory{
		"ai_router": f, "endpoint_picker": f, "ai_upstream": f,
	})
}

func main() {}
