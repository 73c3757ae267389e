package filterconfig

import (
	"fmt"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Debug is the test-only "debug" object any filter_config may carry. It lets
// tests drive failure and async paths through the real library; a
// production config leaves it out.
type Debug struct {
	// PanicIn names a hook that panics on every stream: request_headers,
	// request_body, response_headers or response_body; or "scheduled", the
	// callback of asyncRequestHeaders.
	PanicIn string `json:"panicIn"`
	// AsyncRequestHeaders holds each request in its headers hook until a
	// goroutine has scheduled work back onto the stream's worker thread.
	AsyncRequestHeaders bool `json:"asyncRequestHeaders"`
}

// Enabled reports whether any debug behaviour is on.
func (d Debug) Enabled() bool { return d.PanicIn != "" || d.AsyncRequestHeaders }

var panicHooks = map[string]bool{"": true, "request_headers": true, "request_body": true, "response_headers": true, "response_body": true, "scheduled": true}

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
