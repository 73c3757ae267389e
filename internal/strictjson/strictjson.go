// Package strictjson decodes configuration JSON and, unlike encoding/json,
// names where it is wrong: the path of an unknown field ("rewrites[0]:
// unknown field "weigth" (did you mean "weight"?)"), of a value of the wrong
// type, of a number out of range, and of a value a field's own
// UnmarshalJSON refuses. picker and transform decode their filter configs
// with it, so both filters word their config errors alike.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Decode checks data against v's type, then unmarshals it into v (a
// pointer). The first problem found is returned, always the same for the
// same input: object keys are checked in sorted order.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var syntax json.RawMessage
	if err := dec.Decode(&syntax); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the top-level value")
	}
	if err := check("", syntax, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func check(path string, raw []byte, t reflect.Type) error {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" { // null leaves the default
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A type's own UnmarshalJSON has the last word on its value. A struct's
	// fields are checked first all the same: an UnmarshalJSON that only
	// fills defaults (json.Unmarshal into a plain copy) lets unknown fields
	// through and words type errors in Go's terms.
	custom := reflect.PointerTo(t).Implements(unmarshalerType)
	if custom && t.Kind() != reflect.Struct {
		return unmarshalErr(path, raw, t)
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			return pathErr(path, "must be an object")
		}
		fields := Fields(t)
		for _, name := range sortedKeys(obj) {
			f, ok := fields[name]
			if !ok {
				return pathErr(path, unknownField(name, fields))
			}
			if err := check(join(path, name), obj[name], f.Type); err != nil {
				return err
			}
		}
		if custom {
			return unmarshalErr(path, raw, t)
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			return pathErr(path, "must be an object")
		}
		for _, k := range sortedKeys(obj) {
			if err := check(fmt.Sprintf("%s[%q]", path, k), obj[k], t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Slice:
		var list []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
			return pathErr(path, "must be an array")
		}
		for i, item := range list {
			if err := check(path+"["+strconv.Itoa(i)+"]", item, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.String:
		if raw[0] != '"' {
			return pathErr(path, "must be a string")
		}
	case reflect.Bool:
		if string(raw) != "true" && string(raw) != "false" {
			return pathErr(path, "must be a boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(string(raw), 10, t.Bits()); err != nil {
			return pathErr(path, numberProblem(err, "an integer"))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(string(raw), 10, t.Bits()); err != nil {
			return pathErr(path, numberProblem(err, "a non-negative integer"))
		}
	case reflect.Float32, reflect.Float64:
		if raw[0] == '"' {
			return pathErr(path, "must be a number")
		}
		if _, err := strconv.ParseFloat(string(raw), t.Bits()); err != nil {
			return pathErr(path, numberProblem(err, "a number"))
		}
	default:
		return pathErr(path, fmt.Sprintf("unsupported type %s", t))
	}
	return nil
}

// unmarshalErr runs t's own UnmarshalJSON on raw and puts the path on its
// error.
func unmarshalErr(path string, raw []byte, t reflect.Type) error {
	if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
		return pathErr(path, err.Error())
	}
	return nil
}

// numberProblem words a strconv error: out of range, or not the kind of
// number wanted (a fraction for an integer, a string, a bool).
func numberProblem(err error, want string) string {
	if errors.Is(err, strconv.ErrRange) {
		return "out of range"
	}
	return "must be " + want
}

// Fields maps the JSON names of struct type t's exported fields to the
// fields: the names Decode accepts.
func Fields(t reflect.Type) map[string]reflect.StructField {
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

// unknownField names the field and the likely fix: the known field it
// differs from only in case, else every known field.
func unknownField(name string, fields map[string]reflect.StructField) string {
	for known := range fields {
		if strings.EqualFold(known, name) {
			return fmt.Sprintf("unknown field %q (did you mean %q?)", name, known)
		}
	}
	return fmt.Sprintf("unknown field %q (known: %s)", name, strings.Join(sortedKeys(fields), ", "))
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
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %s", path, msg)
}
