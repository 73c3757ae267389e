// Package filterconfig parses the filter_config of each filter in the
// library. It is plain Go, so envoy.yaml's validation test and the module
// share one parser.
package filterconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
// and type mismatches, with errors that name the offending field.
func DecodeStrict(filter string, raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(Normalize(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(filter, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s filter_config: trailing data after the JSON object", filter)
	}
	return nil
}

func decodeError(filter string, err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(root)"
		}
		return fmt.Errorf("%s filter_config: field %q: expected %s, got JSON %s", filter, field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%s filter_config: invalid JSON at offset %d: %v", filter, syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("%s filter_config: invalid JSON: truncated document", filter)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%s filter_config: unknown field %s", filter, strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return fmt.Errorf("%s filter_config: %v", filter, err)
	}
}
