package main

import (
	"strconv"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// bodyParts is the request body as one filter sees it in a body hook:
// either the previous filter's buffered body handed over as a single frame
// (received is the buffered body), or the filter's own frames, those it
// stopped and buffered earlier plus the frame just received. Sizes are read
// once: each read is a crossing into Envoy.
type bodyParts struct {
	received, buffered         shared.BodyBuffer // received may be nil (trailers)
	receivedIsBuffered         bool
	receivedSize, bufferedSize uint64
}

func newBodyParts(h shared.HttpFilterHandle, received shared.BodyBuffer) bodyParts {
	b := bodyParts{received: received, buffered: h.BufferedRequestBody()}
	if received != nil {
		b.receivedIsBuffered = h.ReceivedBufferedRequestBody()
		b.receivedSize = received.GetSize()
	}
	if !b.receivedIsBuffered {
		b.bufferedSize = b.buffered.GetSize()
	}
	return b
}

func (b bodyParts) size() uint64 { return b.receivedSize + b.bufferedSize }

// appendTo appends the whole body, as one Go-owned slice, to dst.
func (b bodyParts) appendTo(dst []byte) []byte {
	if b.bufferedSize > 0 {
		dst = appendChunks(dst, b.buffered)
	}
	if b.receivedSize > 0 {
		dst = appendChunks(dst, b.received)
	}
	return dst
}

func appendChunks(dst []byte, b shared.BodyBuffer) []byte {
	for _, c := range b.GetChunks() {
		dst = append(dst, c.ToUnsafeBytes()...)
	}
	return dst
}

// replace swaps the whole body for body, keeping it where Envoy will pick
// it up when the filter continues: in the received frame when that is all
// there is, else in the shared buffer with the received frame emptied. The
// caller fixes content-length.
func (b bodyParts) replace(body []byte) {
	if b.received != nil && b.bufferedSize == 0 {
		b.received.Drain(b.receivedSize)
		b.received.Append(body)
		return
	}
	if b.receivedSize > 0 {
		b.received.Drain(b.receivedSize)
	}
	b.buffered.Drain(b.bufferedSize)
	b.buffered.Append(body)
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
