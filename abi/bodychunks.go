package abi

/*
#cgo darwin LDFLAGS: -Wl,-undefined,dynamic_lookup
#cgo linux LDFLAGS: -Wl,--unresolved-symbols=ignore-all
#include "envoy_callbacks.h"

// ip_get_body_chunks writes the chunks into out when they fit in cap
// entries (one crossing from Go for both callbacks) and returns how many
// there are.
static size_t ip_get_body_chunks(void* f, uint32_t t, ip_buf* out, size_t cap) {
  size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(f, t);
  if (n > 0 && n <= cap) envoy_dynamic_module_callback_http_get_body_chunks(f, t, out);
  return n;
}

typedef struct {
  size_t received, buffered; // chunk counts
  bool received_is_buffered;
} inferencepool_request_body;

// ip_get_request_body reads a request body hook's body in one crossing from
// Go, making newBodyParts's callbacks: whether the received frame is the
// buffered body, the received frame's chunks, then, unless it is the
// buffered body, the buffered body's, each list after the other in out when
// it fits in cap entries (else only its size is read: the caller reads the
// chunks into more room).
static inferencepool_request_body ip_get_request_body(void* f, uint32_t rt, uint32_t bt,
                                                      ip_buf* out, size_t cap) {
  inferencepool_request_body r = {0, 0, false};
  r.received_is_buffered = envoy_dynamic_module_callback_http_received_buffered_request_body(f);
  r.received = ip_get_body_chunks(f, rt, out, cap);
  if (!r.received_is_buffered) {
    if (r.received <= cap)
      r.buffered = ip_get_body_chunks(f, bt, out + r.received, cap - r.received);
    else
      r.buffered = ip_get_body_chunks(f, bt, out, 0);
  }
  return r;
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
		(*C.ip_buf)(unsafe.Pointer(unsafe.SliceData(free))), C.size_t(len(free))))
	if n > len(free) { // no room: the chunks alone (n is still the count, nothing ran in between)
		dst = slices.Grow(dst, n)
		C.envoy_dynamic_module_callback_http_get_body_chunks(raw.filter, C.uint32_t(raw.bodyType),
			(*C.ip_buf)(unsafe.Pointer(unsafe.SliceData(dst[len(dst):cap(dst)]))))
	}
	return dst[:len(dst)+n]
}

// RequestBodyChunks reads the body a request body hook sees: whether the
// received frame is the stream's buffered body
// (HttpFilterHandle.ReceivedBufferedRequestBody), then the received frame's
// chunks and, unless it is the buffered body, the buffered body's, appended
// to dst in that order; n is how many are the received frame's. The same
// callbacks, in the same order, as ReceivedBufferedRequestBody and two
// BodyChunks, but in one call from Go where the chunks fit in dst's room
// (else the lists that did not fit are read again). received and buffered
// are the hook's HttpFilterHandle.ReceivedRequestBody (the hook's
// argument) and BufferedRequestBody.
func RequestBodyChunks(h shared.HttpFilterHandle, received, buffered shared.BodyBuffer, dst []shared.UnsafeEnvoyBuffer) (
	chunks []shared.UnsafeEnvoyBuffer, n int, receivedIsBuffered bool) {
	rr, br := sdkBodyOf(received), sdkBodyOf(buffered)
	if rr == nil || br == nil || rr.filter != br.filter {
		receivedIsBuffered = h.ReceivedBufferedRequestBody()
		dst = BodyChunks(received, dst)
		n = len(dst)
		if !receivedIsBuffered {
			dst = BodyChunks(buffered, dst)
		}
		return dst, n, receivedIsBuffered
	}
	base := len(dst)
	free := dst[base:cap(dst)]
	r := C.ip_get_request_body(rr.filter, C.uint32_t(rr.bodyType), C.uint32_t(br.bodyType),
		(*C.ip_buf)(unsafe.Pointer(unsafe.SliceData(free))), C.size_t(len(free)))
	nr, nb := int(r.received), int(r.buffered)
	receivedIsBuffered = bool(r.received_is_buffered)
	if nr+nb > len(free) {
		// No room for a list (the filter's slice grows once): its chunks
		// alone, as BodyChunks does (the sizes are read already, nothing
		// ran in between).
		written := 0 // the received frame's chunks, if they fit
		if nr <= len(free) {
			written = nr
		}
		dst = slices.Grow(dst[:base+written], nr+nb-written)
		all := dst[base : base+nr+nb]
		if nr > len(free) {
			C.envoy_dynamic_module_callback_http_get_body_chunks(rr.filter, C.uint32_t(rr.bodyType),
				(*C.ip_buf)(unsafe.Pointer(unsafe.SliceData(all))))
		}
		if nb > 0 {
			C.envoy_dynamic_module_callback_http_get_body_chunks(br.filter, C.uint32_t(br.bodyType),
				(*C.ip_buf)(unsafe.Pointer(unsafe.SliceData(all[nr:]))))
		}
	}
	return dst[:base+nr+nb], nr, receivedIsBuffered
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
	_ [unsafe.Sizeof(shared.UnsafeEnvoyBuffer{}) - C.sizeof_ip_buf]byte
	_ [C.sizeof_ip_buf - unsafe.Sizeof(shared.UnsafeEnvoyBuffer{})]byte
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
