//go:build inferencepool_debug

package filterconfig

import (
	"fmt"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

var panicHooks = map[string]bool{"": true, "request_headers": true, "request_body": true, "response_headers": true, "response_body": true, "scheduled": true, "gossip": true, "probe": true}

// SplitDebug removes the "debug" object from a filter_config and parses it;
// the rest goes to the filter's own parser.
func SplitDebug(filter string, raw []byte) (Debug, []byte, error) {
	raw = Normalize(raw)
	var d Debug
	if !gjson.ValidBytes(raw) {
		var v any
		return d, nil, DecodeStrict(filter, raw, &v)
	}
	dbg := gjson.GetBytes(raw, "debug")
	if !dbg.Exists() {
		return d, raw, nil
	}
	if err := DecodeStrict(filter, []byte(dbg.Raw), &d); err != nil {
		return d, nil, fmt.Errorf("%w (in field \"debug\")", err)
	}
	if !panicHooks[d.PanicIn] {
		return d, nil, fmt.Errorf("%s filter_config: field \"debug.panicIn\": unknown hook %q", filter, d.PanicIn)
	}
	rest, err := sjson.DeleteBytes(raw, "debug")
	if err != nil {
		return d, nil, fmt.Errorf("%s filter_config: %v", filter, err)
	}
	return d, rest, nil
}
