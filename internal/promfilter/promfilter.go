// Package promfilter answers a Prometheus text exposition restricted to
// some metric names, as prometheus_client's exposition does for
// `?name[]=...` (registry.restricted_registry: the families with a sample
// of one of the names). Fake model servers in tests and in the collector's
// CPU benchmark use it to answer like vLLM's /metrics.
package promfilter

import (
	"bytes"
	"net/url"
)

// Names returns the name[] values of a query, nil when there are none.
func Names(q url.Values) []string { return q["name[]"] }

// Filter returns the lines of expo that belong to one of names: # HELP and
// # TYPE lines naming one, and samples whose metric name is one.
func Filter(expo []byte, names []string) []byte {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var out []byte
	for len(expo) > 0 {
		line := expo
		if i := bytes.IndexByte(expo, '\n'); i >= 0 {
			line, expo = expo[:i+1], expo[i+1:]
		} else {
			expo = nil
		}
		if want[string(metricName(line))] {
			out = append(out, line...)
		}
	}
	return out
}

// metricName is the name a line is about: a sample's metric name, or the
// name after # HELP / # TYPE.
func metricName(line []byte) []byte {
	if bytes.HasPrefix(line, []byte("# HELP ")) || bytes.HasPrefix(line, []byte("# TYPE ")) {
		line = line[7:]
	} else if len(line) > 0 && line[0] == '#' {
		return nil
	}
	end := bytes.IndexAny(line, "{ \n")
	if end < 0 {
		return line
	}
	return line[:end]
}
