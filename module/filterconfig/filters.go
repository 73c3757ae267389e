package filterconfig

import (
	"fmt"

	"github.com/tidwall/gjson"

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
	Debug    Debug
	AIRouter *transform.Config
	// EndpointPicker is endpoint_picker's config, or ai_router's
	// "endpointPicker" (ai_router picks too: one filter in the chain).
	EndpointPicker *picker.Config
	AIUpstream     *AIUpstreamConfig
}

// RouterPicker is the field of ai_router's filter_config that holds an
// endpoint_picker filter_config: ai_router then picks the endpoint itself,
// right after its decision, and the chain has no endpoint_picker.
const RouterPicker = "endpointPicker"

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
		if rest, p.EndpointPicker, err = splitRouterPicker(rest); err != nil {
			return nil, err
		}
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

// splitRouterPicker takes ai_router's "endpointPicker" out of raw and
// parses it as endpoint_picker's filter_config; nil when there is none.
// The other members are copied as they are (whatever their spelling: the
// key is compared unescaped), so the router's parser judges them.
func splitRouterPicker(raw []byte) ([]byte, *picker.Config, error) {
	root := gjson.ParseBytes(raw)
	if !gjson.ValidBytes(raw) || !root.IsObject() {
		return raw, nil, nil // the router's parser names what is wrong
	}
	var found []gjson.Result
	rest := []byte{'{'}
	root.ForEach(func(k, v gjson.Result) bool {
		if k.String() == RouterPicker {
			found = append(found, v)
			return true
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		rest = append(rest, raw[k.Index:v.Index+len(v.Raw)]...)
		return true
	})
	switch {
	case len(found) == 0:
		return raw, nil, nil
	case len(found) > 1:
		return nil, nil, fmt.Errorf("%s filter_config: field %q given %d times", AIRouter, RouterPicker, len(found))
	case !found[0].IsObject():
		return nil, nil, fmt.Errorf("%s filter_config: field %q: want an object (an %s filter_config)", AIRouter, RouterPicker, EndpointPicker)
	}
	pc, err := picker.Parse([]byte(found[0].Raw))
	if err != nil {
		return nil, nil, fmt.Errorf("%s filter_config: field %q: %w", AIRouter, RouterPicker, err)
	}
	return append(rest, '}'), pc, nil
}

// PickerRoute is the per-route config of endpoint_picker, and of ai_router
// with an endpointPicker: the pool the route's requests go to.
type PickerRoute struct {
	Pool string `json:"pool"`
}

// ParsePerRoute parses the per-route filter_config (typed_per_filter_config)
// of the named filter exactly as the library does when Envoy loads the route.
// endpoint_picker has one, and ai_router for its endpointPicker.
func ParsePerRoute(filter string, raw []byte) (*PickerRoute, error) {
	if filter != EndpointPicker && filter != AIRouter {
		return nil, fmt.Errorf("filter %q has no per-route config (only %q and %q do)", filter, EndpointPicker, AIRouter)
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
