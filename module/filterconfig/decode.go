// Package filterconfig parses the filter_config of each filter in the
// library. It is plain Go, so envoy.yaml's validation test and the module
// share one parser.
package filterconfig

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/strictjson"
)

// Normalize accepts what Envoy hands a dynamic module: a Struct arrives as
// JSON, a StringValue raw (so it may be JSON text, or a JSON string that
// itself holds JSON). Empty means "all defaults".
func Normalize(raw []byte) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return []byte("{}")
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return Normalize([]byte(s))
		}
	}
	return raw
}

// DecodeStrict decodes JSON into v, refusing unknown fields, trailing data
// and type mismatches, with errors that name the offending field (the
// wording of picker's and transform's config errors: internal/strictjson).
func DecodeStrict(filter string, raw []byte, v any) error {
	if err := strictjson.Decode(Normalize(raw), v); err != nil {
		return fmt.Errorf("%s filter_config: %w", filter, err)
	}
	return nil
}
