package main

import (
	"strconv"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// wholeBody returns the complete request or response body at end of stream
// as one Go-owned slice, appended to dst. Envoy hands a filter either the
// previous filter's buffered body as a single frame (received is the
// buffered body), or its own frames: those it stopped and buffered earlier
// plus the final frame, which may or may not already sit in the buffer.
func wholeBody(dst []byte, received, buffered shared.BodyBuffer, receivedIsBuffered bool) []byte {
	if !receivedIsBuffered {
		dst = appendChunks(dst, buffered)
	}
	if received != nil {
		dst = appendChunks(dst, received)
	}
	return dst
}

func appendChunks(dst []byte, b shared.BodyBuffer) []byte {
	for _, c := range b.GetChunks() {
		dst = append(dst, c.ToUnsafeBytes()...)
	}
	return dst
}

// replaceBody swaps the whole body for body, keeping it where Envoy will
// pick it up when the filter continues: in the received frame when that is
// all there is, else in the shared buffer with the received frame emptied.
// The caller fixes content-length.
func replaceBody(received, buffered shared.BodyBuffer, receivedIsBuffered bool, body []byte) {
	if received != nil && (receivedIsBuffered || buffered.GetSize() == 0) {
		received.Drain(received.GetSize())
		received.Append(body)
		return
	}
	if received != nil {
		received.Drain(received.GetSize())
	}
	buffered.Drain(buffered.GetSize())
	buffered.Append(body)
}

// setContentLength keeps content-length true after a body rewrite; a
// chunked request has none and keeps none.
func setContentLength(h shared.HeaderMap, n int) {
	if h.GetOne("content-length").Len > 0 {
		h.Set("content-length", strconv.Itoa(n))
	}
}

// headerString copies a header value out of Envoy's memory.
func headerString(h shared.HeaderMap, key string) string {
	return h.GetOne(key).ToString()
}
