package filterconfig

import (
	"fmt"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// Filter names, as in envoy.yaml's filter_name.
const (
	AIRouter       = "ai_router"
	EndpointPicker = "endpoint_picker"
	AIUpstream     = "ai_upstream" // an upstream (cluster) filter
)

// Parsed is one filter's parsed config plus its debug options.
type Parsed struct {
	Debug          Debug
	AIRouter       *transform.Config
	EndpointPicker *picker.Config
	AIUpstream     *AIUpstreamConfig
}

// Parse parses the filter_config of the named filter exactly as the library
// does when Envoy creates the filter config.
func Parse(filter string, raw []byte) (*Parsed, error) {
	dbg, rest, err := SplitDebug(filter, raw)
	if err != nil {
		return nil, err
	}
	p := &Parsed{Debug: dbg}
	switch filter {
	case AIRouter:
		p.AIRouter, err = transform.Parse(rest)
		if err != nil {
			err = fmt.Errorf("%s filter_config: %w", filter, err)
		}
	case EndpointPicker:
		p.EndpointPicker, err = picker.Parse(rest)
		if err != nil {
			err = fmt.Errorf("%s filter_config: %w", filter, err)
		}
	case AIUpstream:
		p.AIUpstream, err = ParseAIUpstream(rest)
		if err != nil {
			err = fmt.Errorf("%s filter_config: %w", filter, err)
		}
	default:
		err = fmt.Errorf("unknown filter_name %q: this library has %q, %q and %q (upstream)", filter, AIRouter, EndpointPicker, AIUpstream)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PickerRoute is endpoint_picker's per-route config: the pool the route's
// requests go to.
type PickerRoute struct {
	Pool string `json:"pool"`
}

// ParsePerRoute parses the per-route filter_config (typed_per_filter_config)
// of the named filter exactly as the library does when Envoy loads the route.
// Only endpoint_picker has one.
func ParsePerRoute(filter string, raw []byte) (*PickerRoute, error) {
	if filter != EndpointPicker {
		return nil, fmt.Errorf("filter %q has no per-route config (only %q does)", filter, EndpointPicker)
	}
	var rc PickerRoute
	if err := DecodeStrict(filter+" per-route", raw, &rc); err != nil {
		return nil, err
	}
	if rc.Pool == "" {
		return nil, fmt.Errorf("%s per-route config: field \"pool\" is required", filter)
	}
	return &rc, nil
}
