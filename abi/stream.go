package abi

/*
#cgo darwin LDFLAGS: -Wl,-undefined,dynamic_lookup
#cgo linux LDFLAGS: -Wl,--unresolved-symbols=ignore-all
#include "envoy_callbacks.h"

// The wrappers below keep every out-parameter and label array on the C
// stack: a Go variable whose address goes to C is moved to the heap (the
// SDK's getters pay one allocation each for it), a value returned by a C
// function is not.

typedef struct {
  ip_buf v;
  bool ok;
} ip_view;

typedef struct {
  double n;
  bool ok;
} ip_number;

static ip_view ip_get_header(void* f, uint32_t t, ip_buf key) {
  ip_view r = {{0, 0}, false};
  r.ok = envoy_dynamic_module_callback_http_get_header(f, t, key, &r.v, 0, NULL);
  return r;
}

// ip_labels are up to 8 label values, passed by value.
typedef struct {
  ip_buf v[8];
} ip_labels;

// ip_views are up to 8 header values.
typedef struct {
  ip_buf v[8];
} ip_views;

// ip_get_header_values reads the first value of each of n keys.
static ip_views ip_get_header_values(void* f, uint32_t t, ip_labels keys, size_t n) {
  ip_views r;
  for (size_t i = 0; i < n; i++) {
    r.v[i].ptr = NULL;
    r.v[i].length = 0;
    if (!envoy_dynamic_module_callback_http_get_header(f, t, keys.v[i], &r.v[i], 0, NULL)) {
      r.v[i].ptr = NULL;
      r.v[i].length = 0;
    }
  }
  return r;
}

// ip_get_headers writes the headers into out when they fit in cap entries
// (one crossing from Go for both callbacks) and returns how many there are.
static size_t ip_get_headers(void* f, uint32_t t, ip_header* out, size_t cap) {
  size_t n = envoy_dynamic_module_callback_http_get_headers_size(f, t);
  if (n > 0 && n <= cap) envoy_dynamic_module_callback_http_get_headers(f, t, out);
  return n;
}

static ip_view ip_get_metadata_string(void* f, uint32_t src, ip_buf ns, ip_buf key) {
  ip_view r = {{0, 0}, false};
  r.ok = envoy_dynamic_module_callback_http_get_metadata_string(f, src, ns, key, &r.v);
  return r;
}

static ip_number ip_get_metadata_number(void* f, uint32_t src, ip_buf ns, ip_buf key) {
  ip_number r = {0, false};
  r.ok = envoy_dynamic_module_callback_http_get_metadata_number(f, src, ns, key, &r.n);
  return r;
}

static ip_view ip_get_metadata_list_size(void* f, uint32_t src, ip_buf ns, ip_buf key) {
  ip_view r = {{0, 0}, false}; // the size in r.v.length
  r.ok = envoy_dynamic_module_callback_http_get_metadata_list_size(f, src, ns, key, &r.v.length);
  return r;
}

static ip_view ip_get_metadata_list_string(void* f, uint32_t src, ip_buf ns, ip_buf key, size_t i) {
  ip_view r = {{0, 0}, false};
  r.ok = envoy_dynamic_module_callback_http_get_metadata_list_string(f, src, ns, key, i, &r.v);
  return r;
}

static ip_view ip_get_attribute_string(void* f, uint32_t id) {
  ip_view r = {{0, 0}, false};
  r.ok = envoy_dynamic_module_callback_http_filter_get_attribute_string(f, id, &r.v);
  return r;
}

static ip_view ip_get_attribute_int(void* f, uint32_t id) {
  ip_view r = {{0, 0}, false}; // the value in r.v.length
  uint64_t v = 0;
  r.ok = envoy_dynamic_module_callback_http_filter_get_attribute_int(f, id, &v);
  r.v.length = (size_t)v;
  return r;
}

static ip_view ip_get_filter_state(void* f, ip_buf key) {
  ip_view r = {{0, 0}, false};
  r.ok = envoy_dynamic_module_callback_http_get_filter_state_bytes(f, key, &r.v);
  return r;
}


static uint32_t ip_record_histogram(void* f, size_t id, ip_labels l, size_t n, uint64_t value) {
  return envoy_dynamic_module_callback_http_filter_record_histogram_value(f, id, l.v, n, value);
}

static uint32_t ip_increment_counter(void* f, size_t id, ip_labels l, size_t n, uint64_t value) {
  return envoy_dynamic_module_callback_http_filter_increment_counter(f, id, l.v, n, value);
}
*/
import "C"

import (
	"os"
	"reflect"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// Stream calls Envoy's ABI directly for the getters and stats a filter uses
// on every request, where the SDK's handle allocates: each SDK getter moves
// its out-parameter to the heap (cgo makes every Go pointer passed to C
// escape), and each stat with tags builds a slice of their views. Stream's
// C wrappers keep those on the C stack, so the calls below allocate
// nothing; each returns what the SDK's method of the same name returns.
//
// It needs Envoy's filter pointer, which the SDK's handle holds in an
// unexported field: its layout is checked through reflection on the first
// handle seen (isSDKHandle). A handle of another layout (another SDK
// version, tests' fakes), or INFERENCEPOOL_ABI_DIRECT=off in the
// environment, makes every call go through the SDK's handle instead.
//
// A Stream is valid for its filter's stream only: the filter pointer dies
// with the stream (Envoy calls no hook after destroy, and the filters reset
// their Stream for each stream). Views it returns point into Envoy's
// memory, valid until the hook returns or a setter runs, as the SDK's.
type Stream struct {
	h   shared.HttpFilterHandle
	raw unsafe.Pointer // Envoy's filter pointer; nil: through h
}

// NewStream returns h's Stream.
func NewStream(h shared.HttpFilterHandle) Stream {
	return Stream{h: h, raw: sdkFilterOf(h)}
}

// Direct reports whether s calls the ABI itself (else the SDK's handle).
func (s Stream) Direct() bool { return s.raw != nil }

// Handle is the SDK's handle s was made from.
func (s Stream) Handle() shared.HttpFilterHandle { return s.h }

// directOff is INFERENCEPOOL_ABI_DIRECT=off: every call through the SDK.
var directOff = os.Getenv("INFERENCEPOOL_ABI_DIRECT") == "off"

func strBuf(s string) C.ip_buf {
	return C.ip_buf{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(s))), length: C.size_t(len(s))}
}

func envoyView(b C.ip_buf) shared.UnsafeEnvoyBuffer {
	return shared.UnsafeEnvoyBuffer{Ptr: (*byte)(unsafe.Pointer(b.ptr)), Len: uint64(b.length)}
}

// view is the SDK's reading of a string result: none unless Envoy said
// yes with a non-empty value.
func view(r C.ip_view) (shared.UnsafeEnvoyBuffer, bool) {
	if !bool(r.ok) || r.v.ptr == nil || r.v.length == 0 {
		return shared.UnsafeEnvoyBuffer{}, false
	}
	return envoyView(r.v), true
}

// MetadataString is HttpFilterHandle.GetMetadataString.
func (s Stream) MetadataString(source shared.MetadataSourceType, ns, key string) (shared.UnsafeEnvoyBuffer, bool) {
	if s.raw == nil {
		return s.h.GetMetadataString(source, ns, key)
	}
	return view(C.ip_get_metadata_string(s.raw, C.uint32_t(source), strBuf(ns), strBuf(key)))
}

// MetadataNumber is HttpFilterHandle.GetMetadataNumber.
func (s Stream) MetadataNumber(source shared.MetadataSourceType, ns, key string) (float64, bool) {
	if s.raw == nil {
		return s.h.GetMetadataNumber(source, ns, key)
	}
	r := C.ip_get_metadata_number(s.raw, C.uint32_t(source), strBuf(ns), strBuf(key))
	if !bool(r.ok) {
		return 0, false
	}
	return float64(r.n), true
}

// MetadataListSize is HttpFilterHandle.GetMetadataListSize.
func (s Stream) MetadataListSize(source shared.MetadataSourceType, ns, key string) (int, bool) {
	if s.raw == nil {
		return s.h.GetMetadataListSize(source, ns, key)
	}
	r := C.ip_get_metadata_list_size(s.raw, C.uint32_t(source), strBuf(ns), strBuf(key))
	if !bool(r.ok) {
		return 0, false
	}
	return int(r.v.length), true
}

// MetadataListString is HttpFilterHandle.GetMetadataListString: an empty
// string is there (true) with an empty view.
func (s Stream) MetadataListString(source shared.MetadataSourceType, ns, key string, index int) (shared.UnsafeEnvoyBuffer, bool) {
	if s.raw == nil {
		return s.h.GetMetadataListString(source, ns, key, index)
	}
	r := C.ip_get_metadata_list_string(s.raw, C.uint32_t(source), strBuf(ns), strBuf(key), C.size_t(index))
	if !bool(r.ok) {
		return shared.UnsafeEnvoyBuffer{}, false
	}
	if r.v.ptr == nil || r.v.length == 0 {
		return shared.UnsafeEnvoyBuffer{}, true
	}
	return envoyView(r.v), true
}

// AttributeString is HttpFilterHandle.GetAttributeString.
func (s Stream) AttributeString(id shared.AttributeID) (shared.UnsafeEnvoyBuffer, bool) {
	if s.raw == nil {
		return s.h.GetAttributeString(id)
	}
	return view(C.ip_get_attribute_string(s.raw, C.uint32_t(id)))
}

// AttributeNumber is HttpFilterHandle.GetAttributeNumber (Envoy's integer
// attributes, as a float64).
func (s Stream) AttributeNumber(id shared.AttributeID) (float64, bool) {
	if s.raw == nil {
		return s.h.GetAttributeNumber(id)
	}
	r := C.ip_get_attribute_int(s.raw, C.uint32_t(id))
	if !bool(r.ok) {
		return 0, false
	}
	return float64(uint64(r.v.length)), true
}

// FilterState is HttpFilterHandle.GetFilterState.
func (s Stream) FilterState(key string) (shared.UnsafeEnvoyBuffer, bool) {
	if s.raw == nil {
		return s.h.GetFilterState(key)
	}
	return view(C.ip_get_filter_state(s.raw, strBuf(key)))
}

// maxDirectLabels is how many tag values a stat passes by value (ip_labels).
const maxDirectLabels = 8

func labels(tags []string) C.ip_labels {
	var l C.ip_labels
	for i, t := range tags {
		l.v[i] = strBuf(t)
	}
	return l
}

// RecordHistogramValue is HttpFilterHandle.RecordHistogramValue.
func (s Stream) RecordHistogramValue(id shared.MetricID, value uint64, tags ...string) shared.MetricsResult {
	if s.raw == nil || len(tags) > maxDirectLabels {
		return s.h.RecordHistogramValue(id, value, tags...)
	}
	return shared.MetricsResult(C.ip_record_histogram(s.raw, C.size_t(id), labels(tags), C.size_t(len(tags)), C.uint64_t(value)))
}

// IncrementCounterValue is HttpFilterHandle.IncrementCounterValue.
func (s Stream) IncrementCounterValue(id shared.MetricID, value uint64, tags ...string) shared.MetricsResult {
	if s.raw == nil || len(tags) > maxDirectLabels {
		return s.h.IncrementCounterValue(id, value, tags...)
	}
	return shared.MetricsResult(C.ip_increment_counter(s.raw, C.size_t(id), labels(tags), C.size_t(len(tags)), C.uint64_t(value)))
}

// HeaderValue is HeaderMap.GetOne: the first value of key in m, empty when
// there is none (or it is empty).
func HeaderValue(m shared.HeaderMap, key string) shared.UnsafeEnvoyBuffer {
	raw := sdkHeadersOf(m)
	if raw == nil {
		return m.GetOne(key)
	}
	v, _ := view(C.ip_get_header(raw.filter, C.uint32_t(raw.headerType), strBuf(key)))
	return v
}

// HeaderValues sets dst[i] to HeaderValue(m, keys[i]) for each key, at
// most 8 (then in one call from Go; more go one by one). dst must be as
// long as keys.
func HeaderValues(m shared.HeaderMap, keys []string, dst []shared.UnsafeEnvoyBuffer) {
	raw := sdkHeadersOf(m)
	if raw == nil || len(keys) > maxDirectLabels {
		for i, k := range keys {
			dst[i] = HeaderValue(m, k)
		}
		return
	}
	r := C.ip_get_header_values(raw.filter, C.uint32_t(raw.headerType), labels(keys), C.size_t(len(keys)))
	for i := range keys {
		dst[i], _ = view(C.ip_view{v: r.v[i], ok: true})
	}
}

// Headers appends every entry of m to dst, in Envoy's order, as
// HeaderMap.GetAll returns them: a dst with room (reused by the filter)
// costs no allocation, and the whole map is one crossing from Go (both
// callbacks, size and entries, in one C call) where it fits in dst's room.
// The views are valid until the hook returns or a setter runs; the caller
// should clear those it keeps in dst once the hook is done.
func Headers(m shared.HeaderMap, dst [][2]shared.UnsafeEnvoyBuffer) [][2]shared.UnsafeEnvoyBuffer {
	raw := sdkHeadersOf(m)
	if raw == nil {
		return append(dst, m.GetAll()...)
	}
	free := dst[len(dst):cap(dst)]
	n := int(C.ip_get_headers(raw.filter, C.uint32_t(raw.headerType),
		(*C.ip_header)(unsafe.Pointer(unsafe.SliceData(free))), C.size_t(len(free))))
	if n > len(free) { // no room: the entries alone (n is still the count, nothing ran in between)
		dst = slices.Grow(dst, n)
		C.envoy_dynamic_module_callback_http_get_headers(raw.filter, C.uint32_t(raw.headerType),
			(*C.ip_header)(unsafe.Pointer(unsafe.SliceData(dst[len(dst):cap(dst)]))))
	}
	return dst[:len(dst)+n]
}

// Envoy writes envoy_dynamic_module_type_envoy_buffer and _http_header
// values into Go's UnsafeEnvoyBuffer and [2]UnsafeEnvoyBuffer: the layouts
// must be one.
var (
	_ [unsafe.Sizeof(shared.UnsafeEnvoyBuffer{}) - C.sizeof_ip_buf]byte
	_ [C.sizeof_ip_buf - unsafe.Sizeof(shared.UnsafeEnvoyBuffer{})]byte
	_ [unsafe.Sizeof([2]shared.UnsafeEnvoyBuffer{}) - C.sizeof_ip_header]byte
	_ [C.sizeof_ip_header - unsafe.Sizeof([2]shared.UnsafeEnvoyBuffer{})]byte
	_ [unsafe.Offsetof(C.ip_header{}.value_ptr) - unsafe.Sizeof(shared.UnsafeEnvoyBuffer{})]byte
)

// sdkHeaders is the layout of the SDK's header map (dymHeaderMap in
// sdk/go/abi): the filter's Envoy pointer and the header type.
type sdkHeaders struct {
	filter     unsafe.Pointer
	headerType uint32
}

// sdkHandle is the start of the SDK's filter handle (dymHttpFilterHandle):
// the filter's Envoy pointer.
type sdkHandle struct {
	filter unsafe.Pointer
}

const sdkPkg = "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi"

// The SDK's types once their layouts are checked.
var sdkHeadersType, sdkHandleType atomic.Pointer[reflect.Type]

// checkedType reports whether x's dynamic type t is the one known, or,
// none known yet, passes check (and is then remembered). x's type is read
// without allocating.
func checkedType(known *atomic.Pointer[reflect.Type], t reflect.Type, check func(reflect.Type) bool) bool {
	if directOff {
		return false
	}
	if k := known.Load(); k != nil {
		return *k == t
	}
	if !check(t) {
		return false
	}
	checked := t          // t itself would escape, a heap allocation per call
	known.Store(&checked) // racing stores store the same type
	return true
}

// sdkHeadersOf returns the filter pointer and header type inside m, or nil
// when m is not the SDK's header map as sdkHeaders lays it out.
func sdkHeadersOf(m shared.HeaderMap) *sdkHeaders {
	if !checkedType(&sdkHeadersType, reflect.TypeOf(m), isSDKHeaders) {
		return nil
	}
	return (*sdkHeaders)(reflect.ValueOf(m).UnsafePointer())
}

// sdkFilterOf returns Envoy's filter pointer inside h, or nil when h is not
// the SDK's handle as sdkHandle lays it out.
func sdkFilterOf(h shared.HttpFilterHandle) unsafe.Pointer {
	if !checkedType(&sdkHandleType, reflect.TypeOf(h), isSDKHandle) {
		return nil
	}
	return (*sdkHandle)(reflect.ValueOf(h).UnsafePointer()).filter
}

// sdkStruct returns the struct t points to when t is a pointer to the
// SDK's type name.
func sdkStruct(t reflect.Type, name string) (reflect.Type, bool) {
	if t == nil || t.Kind() != reflect.Pointer {
		return nil, false
	}
	e := t.Elem()
	return e, e.Kind() == reflect.Struct && e.Name() == name && e.PkgPath() == sdkPkg
}

// isSDKHeaders reports whether t is the SDK's header map, laid out as
// sdkHeaders.
func isSDKHeaders(t reflect.Type) bool {
	e, ok := sdkStruct(t, "dymHeaderMap")
	if !ok || e.NumField() != 2 {
		return false
	}
	f, h := e.Field(0), e.Field(1)
	return f.Name == "hostPluginPtr" && f.Type.Kind() == reflect.UnsafePointer && f.Offset == unsafe.Offsetof(sdkHeaders{}.filter) &&
		h.Name == "headerType" && h.Type.Kind() == reflect.Uint32 && h.Offset == unsafe.Offsetof(sdkHeaders{}.headerType)
}

// isSDKHandle reports whether t is the SDK's filter handle, whose first
// field is Envoy's filter pointer.
func isSDKHandle(t reflect.Type) bool {
	e, ok := sdkStruct(t, "dymHttpFilterHandle")
	if !ok || e.NumField() < 1 {
		return false
	}
	f := e.Field(0)
	return f.Name == "hostPluginPtr" && f.Type.Kind() == reflect.UnsafePointer && f.Offset == 0
}
