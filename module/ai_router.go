package main

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

type aiRouterConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func (f *aiRouterConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	p, err := filterconfig.Parse(filterconfig.AIRouter, raw)
	if err != nil {
		return nil, err
	}
	return newFactory(filterconfig.AIRouter, h, p.Debug, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return &shared.EmptyHttpFilter{}
	}, nil)
}
