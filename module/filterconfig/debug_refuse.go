//go:build !inferencepool_debug

package filterconfig

import (
	"fmt"

	"github.com/tidwall/gjson"
)

// SplitDebug refuses a "debug" object: the production library has no test
// injection. The rest of the config goes to the filter's own parser as is
// (which refuses "debug" too, as an unknown field, whatever its spelling).
func SplitDebug(filter string, raw []byte) (Debug, []byte, error) {
	raw = Normalize(raw)
	if gjson.ValidBytes(raw) && gjson.GetBytes(raw, "debug").Exists() {
		return Debug{}, nil, fmt.Errorf("%s filter_config: field \"debug\" is test-only: this library was built without the %s tag",
			filter, DebugBuildTag)
	}
	return Debug{}, raw, nil
}
