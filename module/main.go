// Command module is libinferencepool.so: Envoy's dynamic_modules HTTP filter
// loads it and finds three filters: ai_router and endpoint_picker in the
// listener's chain, ai_upstream in a cluster's upstream chain.
package main

import (
	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi" // the C exports
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

func init() {
	abi.WarnIfCgoCheck()
	sdk.RegisterHttpFilterConfigFactories(map[string]shared.HttpFilterConfigFactory{
		filterconfig.AIRouter:       abi.GuardConfigFactory(&aiRouterConfigFactory{}),
		filterconfig.EndpointPicker: abi.GuardConfigFactory(&endpointPickerConfigFactory{}),
		filterconfig.AIUpstream:     abi.GuardConfigFactory(&aiUpstreamConfigFactory{}),
	})
}

func main() {}
