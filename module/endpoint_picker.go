package main

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

type endpointPickerConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func (f *endpointPickerConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	p, err := filterconfig.Parse(filterconfig.EndpointPicker, raw)
	if err != nil {
		return nil, err
	}
	return newFactory(filterconfig.EndpointPicker, h, p.Debug, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return &shared.EmptyHttpFilter{}
	}, nil)
}
