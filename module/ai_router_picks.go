package main

import (
	"fmt"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
)

// ai_router with an endpointPicker picks too: one filter in the chain
// instead of ai_router, endpoint_picker (README.md, "One filter"). Its
// filter holds endpoint_picker's part (aiRouterFilter.pick) and calls it
// where endpoint_picker's hooks would run: after ai_router's own on the
// request (decide: the pick's reads in ai_router's batch, the facts
// directly), before them on the response.

// openRouterPicker opens the pools of ai_router's endpointPicker and
// defines endpoint_picker's stats on ai_router's config; closePools closes the
// pools.
func openRouterPicker(h shared.HttpFilterConfigHandle, c *picker.Config) (cfg *pickerFilterConfig, closePools func(), err error) {
	pools, err := picker.Open(c)
	if err != nil {
		return nil, nil, fmt.Errorf("%s filter_config: field %q: %w", filterconfig.AIRouter, filterconfig.RouterPicker, err)
	}
	if cfg, err = newPickerFilterConfig(h, pools); err != nil {
		pools.Close()
		return nil, nil, err
	}
	return cfg, pools.Close, nil
}
