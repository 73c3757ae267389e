package main

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// aiRouterConfig is ai_router's filter_config.
type aiRouterConfig struct{}

type aiRouterConfigFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

func parseAIRouterConfig(raw []byte) (aiRouterConfig, debugConfig, error) {
	var cfg aiRouterConfig
	dbg, rest, err := splitDebug(AIRouterName, raw)
	if err != nil {
		return cfg, dbg, err
	}
	return cfg, dbg, decodeStrict(AIRouterName, rest, &cfg)
}

func (f *aiRouterConfigFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	_, dbg, err := parseAIRouterConfig(raw)
	if err != nil {
		return nil, err
	}
	return newFactory(AIRouterName, h, dbg, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return &shared.EmptyHttpFilter{}
	}, nil)
}
