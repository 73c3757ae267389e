package main

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// endpointPickerConfig is endpoint_picker's filter_config.
type endpointPickerConfig struct{}

type endpointPickerConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func parseEndpointPickerConfig(raw []byte) (endpointPickerConfig, debugConfig, error) {
	var cfg endpointPickerConfig
	dbg, rest, err := splitDebug(EndpointPickerName, raw)
	if err != nil {
		return cfg, dbg, err
	}
	return cfg, dbg, decodeStrict(EndpointPickerName, rest, &cfg)
}

func (f *endpointPickerConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	_, dbg, err := parseEndpointPickerConfig(raw)
	if err != nil {
		return nil, err
	}
	return newFactory(EndpointPickerName, h, dbg, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return &shared.EmptyHttpFilter{}
	}, nil)
}
