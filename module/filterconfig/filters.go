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
)

// Parsed is one filter's parsed config plus its debug options.
type Parsed struct {
	Debug          Debug
	AIRouter       *transform.Config
	EndpointPicker *picker.Config
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
	default:
		err = fmt.Errorf("unknown filter_name %q: this library has %q and %q", filter, AIRouter, EndpointPicker)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}
