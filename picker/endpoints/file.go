package endpoints

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// NewFile returns a source that reads path, a JSON or YAML list of ip:port
// (or an object whose "endpoints" field is that list), and reloads it when its
// modification time or size changes, checked every interval. A file that is
// missing or invalid counts one failure per change and keeps the last good set.
func NewFile(path string, interval time.Duration) *Source {
	var last fileState
	return newSource("file", interval, func(context.Context) ([]string, error) {
		cur, err := statFile(path)
		if cur == last {
			return nil, nil // nothing changed, including an unchanged failure
		}
		last = cur
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return parseFile(data)
	})
}

// fileState identifies a version of the file, or the reason it cannot be read.
type fileState struct {
	mod  time.Time
	size int64
	err  string
}

func statFile(path string) (fileState, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{err: err.Error()}, err
	}
	return fileState{mod: fi.ModTime(), size: fi.Size()}, nil
}

func parseFile(data []byte) ([]string, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	js = bytes.TrimSpace(js)
	var list []string
	switch {
	case bytes.HasPrefix(js, []byte("[")):
		err = json.Unmarshal(js, &list)
	case bytes.HasPrefix(js, []byte("{")):
		var obj struct {
			Endpoints []string `json:"endpoints"`
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		err = dec.Decode(&obj)
		list = obj.Endpoints
	default:
		err = errors.New("want a list of ip:port or an object with an endpoints list")
	}
	if err != nil {
		return nil, fmt.Errorf("parse endpoints file: %w", err)
	}
	if len(list) == 0 {
		return nil, errors.New("endpoints file lists no endpoint")
	}
	return normalize(list)
}
