package abi

/*
#cgo darwin LDFLAGS: -Wl,-undefined,dynamic_lookup
#cgo linux LDFLAGS: -Wl,--unresolved-symbols=ignore-all
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Envoy provides the callbacks when it loads the library (as for the SDK).
// As in Envoy's abi.h (envoy_dynamic_module_type_envoy_buffer and the two
// callbacks); the body type is a C enum, passed as a 32-bit integer.
typedef struct {
  const char* ptr;
  size_t length;
} inferencepool_envoy_buffer;

size_t envoy_dynamic_module_callback_http_get_body_chunks_size(void* filter_envoy_ptr, uint32_t body_type);
bool envoy_dynamic_module_callback_http_get_body_chunks(void* filter_envoy_ptr, uint32_t body_type,
                                                        inferencepool_envoy_buffer* result_buffer_vector);

// ip_get_body_chunks writes the chunks into out when they fit in cap
// entries (one crossing from Go for both callbacks) and returns how many
// there are.
static size_t ip_get_body_chunks(void* f, uint32_t t, inferencepool_envoy_buffer* out, size_t cap) {
  size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(f, t);
  if (n > 0 && n <= cap) envoy_dynamic_module_callback_http_get_body_chunks(f, t, out);
  return n;
}
*/
import "C"

import (
	"reflect"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// BodyChunks appends to dst the chunks of body: views into Envoy's memory,
// valid until the hook returns or a setter runs. The SDK's GetChunks makes
// two new slices per call (its C array and the []UnsafeEnvoyBuffer); a
// response streamed in many frames pays that in every body hook. BodyChunks
// makes the same two ABI calls (get_body_chunks_size, get_body_chunks) but
// has Envoy write the chunks straight into dst, so a dst with room (reused
// by the filter) costs no allocation, and both are one crossing from Go
// (one C call) when they fit in dst's room.
//
// It needs the filter pointer and body type the SDK's body buffer holds in
// unexported fields. Their layout is checked through reflection on the first
// body seen: if the SDK lays them out otherwise (another SDK version), or
// body is another implementation (tests' fakes), BodyChunks falls back to
// GetChunks. The caller should clear the chunks it keeps in dst once the
// hook is done, so that no pointer into freed Envoy memory stays in Go
// memory.
func BodyChunks(body shared.BodyBuffer, dst []shared.UnsafeEnvoyBuffer) []shared.UnsafeEnvoyBuffer {
	raw := sdkBodyOf(body)
	if raw == nil {
		return append(dst, body.GetChunks()...)
	}
	free := dst[len(dst):cap(dst)]
	n := int(C.ip_get_body_chunks(raw.filter, C.uint32_t(raw.bodyType),
		(*C.inferencepool_envoy_buffer)(unsafe.Pointer(unsafe.SliceData(free))), C.size_t(len(free))))
	if n > len(free) { // no room: the chunks alone (n is still the count, nothing ran in between)
		dst = slices.Grow(dst, n)
		C.envoy_dynamic_module_callback_http_get_body_chunks(raw.filter, C.uint32_t(raw.bodyType),
			(*C.inferencepool_envoy_buffer)(unsafe.Pointer(unsafe.SliceData(dst[len(dst):cap(dst)]))))
	}
	return dst[:len(dst)+n]
}

// sdkBody is the layout of the SDK's body buffer (dymBodyBuffer in
// sdk/go/abi): the filter's Envoy pointer and the body type.
type sdkBody struct {
	filter   unsafe.Pointer
	bodyType uint32
}

// Envoy writes envoy_dynamic_module_type_envoy_buffer values (a pointer and
// a size_t) into a []shared.UnsafeEnvoyBuffer: the layouts must be one.
var (
	_ [unsafe.Sizeof(shared.UnsafeEnvoyBuffer{}) - C.sizeof_inferencepool_envoy_buffer]byte
	_ [C.sizeof_inferencepool_envoy_buffer - unsafe.Sizeof(shared.UnsafeEnvoyBuffer{})]byte
	_ [unsafe.Offsetof(shared.UnsafeEnvoyBuffer{}.Len) - unsafe.Sizeof(uintptr(0))]byte
)

// sdkBodyType is the SDK's body buffer type once its layout is checked.
var sdkBodyType atomic.Pointer[reflect.Type]

// sdkBodyOf returns the filter pointer and body type inside body, or nil
// when body is not the SDK's body buffer as sdkBody lays it out.
func sdkBodyOf(body shared.BodyBuffer) *sdkBody {
	if !checkedType(&sdkBodyType, reflect.TypeOf(body), isSDKBody) {
		return nil
	}
	return (*sdkBody)(reflect.ValueOf(body).UnsafePointer())
}

// isSDKBody reports whether t is the SDK's body buffer and its fields are
// laid out as sdkBody's.
func isSDKBody(t reflect.Type) bool {
	e, ok := sdkStruct(t, "dymBodyBuffer")
	if !ok || e.NumField() != 2 {
		return false
	}
	f, b := e.Field(0), e.Field(1)
	return f.Name == "hostPluginPtr" && f.Type.Kind() == reflect.UnsafePointer && f.Offset == unsafe.Offsetof(sdkBody{}.filter) &&
		b.Name == "bufferType" && b.Type.Kind() == reflect.Uint32 && b.Offset == unsafe.Offsetof(sdkBody{}.bodyType)
}
