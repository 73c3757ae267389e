//go:build !inferencepool_debug

package main

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

// withDebug: the production build has no test injection (filterconfig
// refuses a "debug" object before a filter is built).
func withDebug(build abi.NewFilterFunc, _ filterconfig.Debug, _ *abi.Barrier) abi.NewFilterFunc {
	return build
}
