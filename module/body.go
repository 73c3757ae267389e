package main

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
)

// bodyParts is the request body as one filter sees it in a body hook:
// either the previous filter's buffered body handed over as a single frame
// (received is the buffered body), or the filter's own frames, those it
// stopped and buffered earlier plus the frame just received. Each part is
// read once, as its slices (views into Envoy's memory, valid until the hook
// returns or a setter runs): the sizes are their lengths, so the whole body
// costs at most five crossings into Envoy (whether the received frame is
// the buffered body, then the slice count and the slices of each part)
// whatever its size.
type bodyParts struct {
	received, buffered         shared.BodyBuffer // received may be nil (trailers)
	receivedChunks             []shared.UnsafeEnvoyBuffer
	bufferedChunks             []shared.UnsafeEnvoyBuffer
	receivedSize, bufferedSize uint64
	// chunks holds both lists (abi.BodyChunks appends to the caller's
	// slice): the caller keeps it for its next hook and clears it when
	// this one is done.
	chunks []shared.UnsafeEnvoyBuffer
}

func newBodyParts(h shared.HttpFilterHandle, received shared.BodyBuffer, chunks []shared.UnsafeEnvoyBuffer) bodyParts {
	b := bodyParts{received: received, buffered: h.BufferedRequestBody()}
	n := len(chunks)
	if received != nil {
		// One call from Go for all three reads (abi.RequestBodyChunks).
		var nr int
		chunks, nr, _ = abi.RequestBodyChunks(h, received, b.buffered, chunks)
		n += nr
	} else {
		chunks = abi.BodyChunks(b.buffered, chunks)
	}
	b.chunks, b.receivedChunks, b.bufferedChunks = chunks, chunks[:n:n], chunks[n:]
	b.receivedSize, b.bufferedSize = chunksSize(b.receivedChunks), chunksSize(b.bufferedChunks)
	return b
}

// bodySizeSoFar is the size of the request body so far, the buffered
// frames and the one received, without reading the bytes: at most three
// crossings and no allocation, for a frame that is not the last one.
func bodySizeSoFar(h shared.HttpFilterHandle, received shared.BodyBuffer) uint64 {
	if h.ReceivedBufferedRequestBody() {
		return received.GetSize()
	}
	return received.GetSize() + h.BufferedRequestBody().GetSize()
}

func chunksSize(chunks []shared.UnsafeEnvoyBuffer) uint64 {
	var n uint64
	for _, c := range chunks {
		n += c.Len
	}
	return n
}

func (b bodyParts) size() uint64 { return b.receivedSize + b.bufferedSize }

// appendTo appends the whole body, as one Go-owned slice, to dst.
func (b bodyParts) appendTo(dst []byte) []byte {
	for _, c := range b.bufferedChunks {
		dst = append(dst, c.ToUnsafeBytes()...)
	}
	for _, c := range b.receivedChunks {
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
