package main

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// A minimal in-Go stand-in for Envoy's side of the SDK, for benchmarks and
// profiles of the filters' own Go code without the C ABI (abihost measures
// that). Methods the filters do not call panic through the nil interfaces.

// fakeHeaders copies what it is given, as Envoy does (a filter may reuse
// the memory of a value it set); the copies are interned, so a benchmark
// pays for each distinct value once.
type fakeHeaders struct {
	kv       [][2]string
	interned map[string]string
	all      [][2]shared.UnsafeEnvoyBuffer // GetAll's, reused
}

func (h *fakeHeaders) copyOf(s string) string {
	if v, ok := h.interned[s]; ok {
		return v
	}
	if h.interned == nil {
		h.interned = map[string]string{}
	}
	v := strings.Clone(s)
	h.interned[v] = v
	return v
}

func view(s string) shared.UnsafeEnvoyBuffer {
	return shared.UnsafeEnvoyBuffer{Ptr: unsafe.StringData(s), Len: uint64(len(s))}
}

func (h *fakeHeaders) Get(key string) []shared.UnsafeEnvoyBuffer {
	var out []shared.UnsafeEnvoyBuffer
	for _, p := range h.kv {
		if p[0] == key {
			out = append(out, view(p[1]))
		}
	}
	return out
}

func (h *fakeHeaders) GetOne(key string) shared.UnsafeEnvoyBuffer {
	for _, p := range h.kv {
		if p[0] == key {
			return view(p[1])
		}
	}
	return shared.UnsafeEnvoyBuffer{}
}

func (h *fakeHeaders) GetAll() [][2]shared.UnsafeEnvoyBuffer {
	h.all = h.all[:0]
	for _, p := range h.kv {
		h.all = append(h.all, [2]shared.UnsafeEnvoyBuffer{view(p[0]), view(p[1])})
	}
	return h.all
}

func (h *fakeHeaders) Set(key, value string) {
	h.Remove(key)
	if value != "" {
		h.kv = append(h.kv, [2]string{h.copyOf(key), h.copyOf(value)})
	}
}

func (h *fakeHeaders) Add(key, value string) {
	h.kv = append(h.kv, [2]string{h.copyOf(key), h.copyOf(value)})
}

func (h *fakeHeaders) Remove(key string) {
	out := h.kv[:0]
	for _, p := range h.kv {
		if p[0] != key {
			out = append(out, p)
		}
	}
	h.kv = out
}

// fakeBody is a body buffer: b, seen as slices of at most split bytes
// (0: one slice), as Envoy's buffers hold what the codec read in pieces.
// GetChunks reuses one slice of views (no allocation of the fake's own in
// a benchmark).
type fakeBody struct {
	b     []byte
	split int
	views []shared.UnsafeEnvoyBuffer
}

func (f *fakeBody) GetChunks() []shared.UnsafeEnvoyBuffer {
	if len(f.b) == 0 {
		return nil
	}
	f.views = f.views[:0]
	for rest := f.b; len(rest) > 0; {
		n := len(rest)
		if f.split > 0 && n > f.split {
			n = f.split
		}
		f.views = append(f.views, shared.UnsafeEnvoyBuffer{Ptr: &rest[0], Len: uint64(n)})
		rest = rest[n:]
	}
	return f.views
}
func (f *fakeBody) GetSize() uint64    { return uint64(len(f.b)) }
func (f *fakeBody) Drain(n uint64)     { f.b = f.b[n:] }
func (f *fakeBody) Append(data []byte) { f.b = append(f.b, data...) }

type fakeConfigHandle struct {
	shared.HttpFilterConfigHandle
	next shared.MetricID
}

func (c *fakeConfigHandle) define() (shared.MetricID, shared.MetricsResult) {
	c.next++
	return c.next, shared.MetricsSuccess
}
func (c *fakeConfigHandle) DefineCounter(string, ...string) (shared.MetricID, shared.MetricsResult) {
	return c.define()
}
func (c *fakeConfigHandle) DefineGauge(string, ...string) (shared.MetricID, shared.MetricsResult) {
	return c.define()
}
func (c *fakeConfigHandle) DefineHistogram(string, ...string) (shared.MetricID, shared.MetricsResult) {
	return c.define()
}

// fakeStream is one stream's handle: headers, bodies, metadata, data.
type fakeStream struct {
	shared.HttpFilterHandle
	reqHeaders, respHeaders fakeHeaders
	buffered                fakeBody
	bufferedResponse        fakeBody
	frame                   fakeBody // the frame a body hook receives (exchange)
	clLen                   int      // exchange's content-length, and as text
	clText                  string
	data                    map[string]any
	metadata                map[string]any
	metaKeys                map[[2]string]string // "ns/key" strings, made once
	metaStrings             map[string]any       // string values, copied once
	filterState             map[string][]byte
	stateBufs               map[string][]byte // filter state values' buffers, kept across reset
	conn                    uint64            // the ConnectionId attribute
	upstream                string
	route                   any               // per-route config, as GetMostSpecificConfig returns it
	hostMetadata            map[string]string // the upstream host's metadata, "ns/key" → string
	logs                    []string
	replies                 int
	lastReply               fakeReply
}

type fakeReply struct {
	status uint32
	body   []byte
	detail string
}

func (s *fakeStream) reset() {
	s.reqHeaders.kv, s.respHeaders.kv = s.reqHeaders.kv[:0], s.respHeaders.kv[:0]
	s.buffered.b = s.buffered.b[:0]
	clear(s.data)
	clear(s.metadata)
	clear(s.filterState)
}

func (s *fakeStream) RequestHeaders() shared.HeaderMap       { return &s.reqHeaders }
func (s *fakeStream) ResponseHeaders() shared.HeaderMap      { return &s.respHeaders }
func (s *fakeStream) BufferedRequestBody() shared.BodyBuffer { return &s.buffered }
func (s *fakeStream) BufferedResponseBody() shared.BodyBuffer {
	return &s.bufferedResponse
}
func (s *fakeStream) ReceivedBufferedRequestBody() bool { return false }
func (s *fakeStream) ClearRouteCache()                  {}
func (s *fakeStream) GetMostSpecificConfig() any        { return s.route }
func (s *fakeStream) SetData(k string, v any)           { s.data[k] = v }
func (s *fakeStream) GetData(k string) any              { return s.data[k] }
func (s *fakeStream) SetMetadata(ns, k string, v any) {
	if str, ok := v.(string); ok {
		v = s.metaString(str) // copied, as Envoy does
	}
	s.metadata[s.metaKey(ns, k)] = v
}

// metaString is a copy of str as an interface value, made once per value.
func (s *fakeStream) metaString(str string) any {
	if v, ok := s.metaStrings[str]; ok {
		return v
	}
	if s.metaStrings == nil {
		s.metaStrings = map[string]any{}
	}
	c := strings.Clone(str)
	s.metaStrings[c] = c
	return s.metaStrings[c]
}

// metaKey is "ns/key", without an allocation of the fake's own once made.
func (s *fakeStream) metaKey(ns, k string) string {
	key, ok := s.metaKeys[[2]string{ns, k}]
	if !ok {
		if s.metaKeys == nil {
			s.metaKeys = map[[2]string]string{}
		}
		key = ns + "/" + k
		s.metaKeys[[2]string{ns, k}] = key
	}
	return key
}

// SetFilterState keeps the first value of a key: Envoy stores it read-only.
func (s *fakeStream) SetFilterState(k string, v []byte) {
	if _, ok := s.filterState[k]; !ok {
		if s.stateBufs == nil {
			s.stateBufs = map[string][]byte{}
		}
		b := append(s.stateBufs[k][:0], v...)
		s.stateBufs[k] = b
		s.filterState[k] = b
	}
}
func (s *fakeStream) GetFilterState(k string) (shared.UnsafeEnvoyBuffer, bool) {
	v, ok := s.filterState[k]
	if !ok || len(v) == 0 {
		return shared.UnsafeEnvoyBuffer{}, false
	}
	return shared.UnsafeEnvoyBuffer{Ptr: &v[0], Len: uint64(len(v))}, true
}
func (s *fakeStream) GetAttributeNumber(id shared.AttributeID) (float64, bool) {
	if id == shared.AttributeIDConnectionId {
		return float64(s.conn), true
	}
	return 0, false
}
func (s *fakeStream) SendLocalResponse(status uint32, _ [][2]string, body []byte, detail string) {
	s.replies++
	s.lastReply = fakeReply{status, body, detail}
}
func (s *fakeStream) GetMetadataString(src shared.MetadataSourceType, ns, key string) (shared.UnsafeEnvoyBuffer, bool) {
	k := s.metaKey(ns, key)
	if v, ok := s.hostMetadata[k]; ok && src == shared.MetadataSourceTypeHost {
		return view(v), true
	}
	if v, ok := s.metadata[k].(string); ok && src == shared.MetadataSourceTypeDynamic {
		return view(v), true
	}
	return shared.UnsafeEnvoyBuffer{}, false
}
func (s *fakeStream) GetMetadataNumber(src shared.MetadataSourceType, ns, key string) (float64, bool) {
	if src != shared.MetadataSourceTypeDynamic {
		return 0, false
	}
	switch v := s.metadata[s.metaKey(ns, key)].(type) {
	case float64:
		return v, true
	case uint64:
		return float64(v), true
	}
	return 0, false
}
func (s *fakeStream) GetMetadataListSize(shared.MetadataSourceType, string, string) (int, bool) {
	return 0, false
}
func (s *fakeStream) GetAttributeString(id shared.AttributeID) (shared.UnsafeEnvoyBuffer, bool) {
	if id == shared.AttributeIDUpstreamAddress && s.upstream != "" {
		return view(s.upstream), true
	}
	return shared.UnsafeEnvoyBuffer{}, false
}
func (s *fakeStream) RecordHistogramValue(shared.MetricID, uint64, ...string) shared.MetricsResult {
	return shared.MetricsSuccess
}
func (s *fakeStream) IncrementCounterValue(shared.MetricID, uint64, ...string) shared.MetricsResult {
	return shared.MetricsSuccess
}
func (s *fakeStream) SetGaugeValue(shared.MetricID, uint64, ...string) shared.MetricsResult {
	return shared.MetricsSuccess
}
func (s *fakeStream) Log(_ shared.LogLevel, format string, args ...any) {
	s.logs = append(s.logs, fmt.Sprintf(format, args...))
}
