package abi

import (
	"fmt"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// GuardConfigFactory wraps a config factory so that config creation refuses
// to run without GODEBUG=cgocheck=0 and never lets a panic reach Envoy:
// both become a config error Envoy logs and rejects.
func GuardConfigFactory(f shared.HttpFilterConfigFactory) shared.HttpFilterConfigFactory {
	return &guardedConfigFactory{inner: f}
}

type guardedConfigFactory struct {
	inner shared.HttpFilterConfigFactory
}

func (g *guardedConfigFactory) Create(h shared.HttpFilterConfigHandle, cfg []byte) (ff shared.HttpFilterFactory, err error) {
	if !CgoCheckOK {
		return nil, ErrCgoCheck
	}
	defer func() {
		if r := recover(); r != nil {
			ff, err = nil, fmt.Errorf("panic while creating filter config: %v", r)
		}
	}()
	return g.inner.Create(h, cfg)
}

func (g *guardedConfigFactory) CreatePerRoute(cfg []byte) (c any, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("panic while creating per-route config: %v", r)
		}
	}()
	return g.inner.CreatePerRoute(cfg)
}
