package picker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// decodeStrict unmarshals data into v after checking it against v's type:
// unknown or differently-cased field names, wrong JSON types and values a
// field's own UnmarshalJSON rejects are reported with their path
// ("pools[0].scrape.interval: ..."), which encoding/json does not do.
func decodeStrict(data []byte, v any) error {
	var syntax any
	if err := json.Unmarshal(data, &syntax); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if err := check("", data, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func check(path string, raw []byte, t reflect.Type) error {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			return pathErr(path, err.Error())
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			return pathErr(path, "want an object")
		}
		fields := jsonFields(t)
		for _, name := range sortedKeys(obj) {
			f, ok := fields[name]
			if !ok {
				return pathErr(join(path, name), unknownField(name, fields))
			}
			if err := check(join(path, name), obj[name], f.Type); err != nil {
				return err
			}
		}
	case reflect.Slice:
		var list []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
			return pathErr(path, "want a list")
		}
		for i, item := range list {
			if err := check(fmt.Sprintf("%s[%d]", path, i), item, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			return pathErr(path, "want an object")
		}
		for _, k := range sortedKeys(obj) {
			if err := check(fmt.Sprintf("%s[%q]", path, k), obj[k], t.Elem()); err != nil {
				return err
			}
		}
	case reflect.String:
		if raw[0] != '"' {
			return pathErr(path, "want a string")
		}
	case reflect.Bool:
		if string(raw) != "true" && string(raw) != "false" {
			return pathErr(path, "want true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(string(raw), 10, t.Bits()); err != nil {
			return pathErr(path, "want an integer")
		}
	case reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil || raw[0] == '"' {
			return pathErr(path, "want a number")
		}
	}
	return nil
}

// jsonFields maps the JSON names of t's exported fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

func unknownField(name string, fields map[string]reflect.StructField) string {
	for known := range fields {
		if strings.EqualFold(known, name) {
			return fmt.Sprintf("unknown field (did you mean %q?)", known)
		}
	}
	return "unknown field (known: " + strings.Join(sortedKeys(fields), ", ") + ")"
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func pathErr(path, msg string) error {
	if path == "" {
		return fmt.Errorf("%s", msg)
	}
	return fmt.Errorf("%s: %s", path, msg)
}
