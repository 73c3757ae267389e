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
// by the filter) costs no allocation.
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
	n := int(C.envoy_dynamic_module_callback_http_get_body_chunks_size(raw.filter, C.uint32_t(raw.bodyType)))
	if n == 0 {
		return dst
	}
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	C.envoy_dynamic_module_callback_http_get_body_chunks(raw.filter, C.uint32_t(raw.bodyType),
		(*C.inferencepool_envoy_buffer)(unsafe.Pointer(unsafe.SliceData(out))))
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
	t := reflect.TypeOf(body)
	if known := sdkBodyType.Load(); known == nil || *known != t {
		if known != nil || !isSDKBody(t) {
			return nil
		}
		checked := t                // t itself would escape, a heap allocation per call
		sdkBodyType.Store(&checked) // racing stores store the same type
	}
	return (*sdkBody)(reflect.ValueOf(body).UnsafePointer())
}

// isSDKBody reports whether t is the SDK's body buffer and its fields are
// laid out as sdkBody's.
func isSDKBody(t reflect.Type) bool {
	if t == nil || t.Kind() != reflect.Pointer {
		return false
	}
	e := t.Elem()
	if e.Kind() != reflect.Struct || e.Name() != "dymBodyBuffer" || e.NumField() != 2 ||
		e.PkgPath() != "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi" {
		return false
	}
	f, b := e.Field(0), e.Field(1)
	return f.Name == "hostPluginPtr" && f.Type.Kind() == reflect.UnsafePointer && f.Offset == unsafe.Offsetof(sdkBody{}.filter) &&
		b.Name == "bufferType" && b.Type.Kind() == reflect.Uint32 && b.Offset == unsafe.Offsetof(sdkBody{}.bodyType)
}
