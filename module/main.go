// Command module is libinferencepool.so: Envoy's dynamic_modules HTTP filter
// loads it and finds two filters, ai_router and endpoint_picker.
package main

import (
	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi" // the C exports
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
)

// Filter names, as in envoy.yaml's filter_name.
const (
	AIRouterName       = "ai_router"
	EndpointPickerName = "endpoint_picker"
)

func init() {
	abi.WarnIfCgoCheck()
	sdk.RegisterHttpFilterConfigFactories(map[string]shared.HttpFilterConfigFactory{
		AIRouterName:       abi.GuardConfigFactory(&aiRouterConfigFactory{}),
		EndpointPickerName: abi.GuardConfigFactory(&endpointPickerConfigFactory{}),
	})
}

func main() {}
