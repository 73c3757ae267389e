package transform

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

// decodeStrict decodes data into v (a pointer to a struct) and rejects unknown
// fields and values of the wrong type with an error naming the field's path,
// such as "rewrites[0].targets[1].weight: must be an integer".
// encoding/json alone names neither the path of an unknown field nor array
// indexes.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("invalid JSON: data after the top-level value")
	}
	if err := checkShape(tree, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// checkShape reports the first place where the JSON tree (decoded with
// UseNumber) does not fit Go type t.
func checkShape(tree any, t reflect.Type, path string) error {
	if tree == nil { // null leaves the default
		return nil
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fail := func(format string, args ...any) error {
		if path == "" {
			return fmt.Errorf(format, args...)
		}
		return fmt.Errorf("%s: "+format, append([]any{path}, args...)...)
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := tree.(map[string]any)
		if !ok {
			return fail("must be an object")
		}
		// Sorted, so that the first error reported is always the same.
		for _, key := range slices.Sorted(maps.Keys(obj)) {
			f, ok := fieldByTag(t, key)
			if !ok {
				return fail("unknown field %q", key)
			}
			if err := checkShape(obj[key], f.Type, join(path, key)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := tree.([]any)
		if !ok {
			return fail("must be an array")
		}
		for i, e := range arr {
			if err := checkShape(e, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.String:
		if _, ok := tree.(string); !ok {
			return fail("must be a string")
		}
	case reflect.Bool:
		if _, ok := tree.(bool); !ok {
			return fail("must be a boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := tree.(json.Number)
		if !ok {
			return fail("must be an integer")
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			return fail("%s", numberProblem(err, "an integer"))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := tree.(json.Number)
		if !ok {
			return fail("must be a non-negative integer")
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			return fail("%s", numberProblem(err, "a non-negative integer"))
		}
	default:
		return fail("unsupported type %s", t)
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func numberProblem(err error, want string) string {
	if errors.Is(err, strconv.ErrRange) {
		return "out of range"
	}
	return "must be " + want
}
