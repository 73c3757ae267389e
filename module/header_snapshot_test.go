package main

import (
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

func TestHeaderSnapshot(t *testing.T) {
	h := &fakeHeaders{kv: [][2]string{{":path", "/v1/chat/completions"}, {"accept-encoding", "gzip"}, {"x-empty", ""},
		{"accept-encoding", "br"}, {"content-type", "application/json"}}}
	var s headerSnapshot
	s.read(h)
	tests := []struct {
		name  string
		get   string
		count int
	}{
		{":path", "/v1/chat/completions", 1},
		{"accept-encoding", "gzip", 2},
		{"x-empty", "", 1}, // there, with an empty value: GetOne reads ""
		{"absent", "", 0},
		{"Content-Type", "", 0}, // names are Envoy's, lower case
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.get, s.get(tc.name))
			require.Equal(t, tc.count, s.count(tc.name))
		})
	}
	require.True(t, s.only("content-type", "application/json"))
	require.False(t, s.only("content-type", "text/plain"))
	require.False(t, s.only("accept-encoding", "gzip"), "two entries: setting one value changes the map")
	require.False(t, s.only("absent", ""))
	require.Equal(t, "x,gzip, br", string(s.appendList([]byte("x,"), "accept-encoding")))

	// A second read replaces the first, in the same buffer.
	h.kv = [][2]string{{":path", "/v1/embeddings"}}
	s.read(h)
	require.Equal(t, "/v1/embeddings", s.get(":path"))
	require.Zero(t, s.count("accept-encoding"))
}

// countingHeaders counts the setters that reach the map (each a crossing
// into Envoy).
type countingHeaders struct {
	fakeHeaders
	sets, removes int
}

func (h *countingHeaders) Set(key, value string) { h.sets++; h.fakeHeaders.Set(key, value) }
func (h *countingHeaders) Remove(key string)     { h.removes++; h.fakeHeaders.Remove(key) }

// applyEdits applies every edit: what applyChangingEdits must amount to.
func applyEdits(h shared.HeaderMap, edits []transform.HeaderEdit) {
	for _, e := range edits {
		if e.Remove {
			h.Remove(e.Name)
		} else {
			h.Set(e.Name, e.Value)
		}
	}
}

// applyChangingEdits leaves the map exactly as applyEdits does, with only
// the setters that change it.
func TestApplyChangingEdits(t *testing.T) {
	edits := []transform.HeaderEdit{{Name: ":path", Value: "/v1/chat/completions"}, {Name: "content-length", Value: "12"},
		{Name: "content-type", Value: "application/json"}, {Name: "authorization", Value: "Bearer sk"},
		{Name: "x-api-key", Remove: true}, {Name: "anthropic-version", Remove: true}, {Name: "accept-encoding", Remove: true}}
	tests := []struct {
		name          string
		headers       [][2]string
		sets, removes int
	}{
		{"client headers", [][2]string{{":path", "/v1/chat/completions"}, {"content-type", "application/json"}, {"content-length", "12"},
			{"authorization", "Bearer client"}}, 1, 0},
		{"leftovers of an earlier attempt", [][2]string{{":path", "/v1/messages"}, {"content-type", "application/json"}, {"content-length", "40"},
			{"x-api-key", "sk-ant"}, {"anthropic-version", "2023-06-01"}, {"accept-encoding", "gzip"}}, 3, 3},
		{"a value twice", [][2]string{{":path", "/v1/chat/completions"}, {"content-type", "application/json"}, {"content-type", "application/json"},
			{"content-length", "12"}, {"authorization", "Bearer sk"}}, 1, 0},
		{"empty values are there", [][2]string{{":path", "/v1/chat/completions"}, {"content-type", "application/json"}, {"content-length", "12"},
			{"authorization", "Bearer sk"}, {"x-api-key", ""}}, 0, 1},
	}
	// A name edited twice: the second edit no longer compares with before.
	twice := []transform.HeaderEdit{{Name: "x-a", Value: "1"}, {Name: "x-a", Remove: true}, {Name: "x-b", Remove: true}, {Name: "x-b", Value: "2"}}
	got := &countingHeaders{fakeHeaders: fakeHeaders{kv: [][2]string{{"x-b", "2"}}}}
	var before headerSnapshot
	before.read(got)
	applyChangingEdits(new(abi.Batch), got, &before, twice)
	require.Equal(t, [][2]string{{"x-b", "2"}}, got.kv)
	require.Equal(t, 2, got.sets)
	require.Equal(t, 2, got.removes)

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := &fakeHeaders{kv: append([][2]string(nil), tc.headers...)}
			applyEdits(want, edits)
			got := &countingHeaders{fakeHeaders: fakeHeaders{kv: append([][2]string(nil), tc.headers...)}}
			var before headerSnapshot
			before.read(got)
			applyChangingEdits(new(abi.Batch), got, &before, edits)
			require.ElementsMatch(t, want.kv, got.kv)
			require.Equal(t, tc.sets, got.sets, "sets")
			require.Equal(t, tc.removes, got.removes, "removes")
		})
	}
}
