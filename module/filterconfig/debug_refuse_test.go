//go:build !inferencepool_debug

package filterconfig

import (
	"testing"
)

// The production build refuses the test-only "debug" object at load, naming
// the field, in every spelling the filters' parsers would otherwise accept.
func TestProductionRefusesDebug(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "debug object", filter: AIRouter, raw: `{"debug":{"panicIn":"request_body"}}`, wantErr: `field "debug" is test-only`},
		{name: "empty debug object", filter: EndpointPicker, raw: `{"debug":{}}`, wantErr: `field "debug" is test-only`},
		{name: "StringValue holding JSON", filter: AIRouter, raw: `"{\"debug\":{\"asyncRequestHeaders\":true}}"`, wantErr: `"debug"`},
		{name: "escaped key", filter: AIRouter, raw: `{"de\u0062ug":{"panicIn":"request_body"}}`, wantErr: `"debug"`},
		{name: "debug beside a valid picker config", filter: EndpointPicker,
			raw: `{"debug":{},"pools":[{"name":"p","endpoints":{"static":["127.0.0.1:8000"]}}]}`, wantErr: `field "debug" is test-only`},
	})
}
