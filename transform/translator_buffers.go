package transform

import (
	"slices"
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"
)

// maxKeptBuffer bounds each buffer a kept translator (Translators) holds
// for its next exchange: one that grew past it (a huge request or answer)
// is dropped at the end of its use, so it does not pin memory in a pooled
// filter.
const maxKeptBuffer = 64 << 10

// kept returns b emptied for the next exchange, or nil when it grew past
// maxKeptBuffer.
func kept[T any](b []T) []T {
	var zero T
	if cap(b)*int(unsafe.Sizeof(zero)) > maxKeptBuffer {
		return nil
	}
	return b[:0]
}

// requestBuffers is the memory a provider translator (Anthropic, Gemini,
// Bedrock) writes its translated request into: the body, the header
// edits and the strings they carry. It is kept across exchanges
// (Translators.For), so a reused translator's request costs no allocation
// of its own. What TranslateRequest returns points into it: it is valid
// until the translator's next exchange.
type requestBuffers struct {
	body  []byte // the translated body
	path  []byte // the :path value
	host  []byte // the :authority value (Bedrock)
	model []byte // the request's model
	num   [20]byte
	edits []HeaderEdit
}

// recycled returns b's buffers, emptied (and bounded), for the next
// exchange; the edits lose their values (credentials among them).
func (b *requestBuffers) recycled() requestBuffers {
	clear(b.edits[:cap(b.edits)])
	return requestBuffers{body: kept(b.body), path: kept(b.path), host: kept(b.host), model: kept(b.model), edits: b.edits[:0]}
}

// startBody returns the body buffer, empty, with room for n bytes (kept
// in b: a translation that fails keeps it too; one that grows it past n
// stores it back).
func (b *requestBuffers) startBody(n int) []byte {
	b.body = slices.Grow(b.body[:0], n)
	return b.body
}

// startEdits returns the edits buffer, empty, with room for every edit a
// translation makes.
func (b *requestBuffers) startEdits() []HeaderEdit {
	if b.edits == nil {
		b.edits = make([]HeaderEdit, 0, editsCap)
	}
	return b.edits[:0]
}

// setModel copies the request's model (a view into its body) into b and
// returns the copy.
func (b *requestBuffers) setModel(m string) string {
	b.model = append(b.model[:0], m...)
	return unsafeString(b.model)
}

// contentLength is the content-length edit for n bytes, its digits in b.
func (b *requestBuffers) contentLength(n int) HeaderEdit {
	return HeaderEdit{Name: "content-length", Value: unsafeString(strconv.AppendInt(b.num[:0], int64(n), 10))}
}

// setPath keeps p (built in b.path) as b.path and returns it as a string.
func (b *requestBuffers) setPath(p []byte) string {
	b.path = p
	return unsafeString(p)
}

// answerBuffers is the scratch a whole answer's translation uses (the
// texts joined from its blocks), kept across exchanges like
// requestBuffers.
type answerBuffers struct {
	text, reasoning []byte
}

func (b *answerBuffers) recycled() answerBuffers {
	return answerBuffers{text: kept(b.text), reasoning: kept(b.reasoning)}
}

// appendJoined writes a whole answer's message content (the joined text,
// or null) and reasoning_content (when there was any), as JSON strings.
func appendJoined(dst, text []byte, hasText bool, reasoning []byte, hasReasoning bool) []byte {
	if hasText {
		dst = gjson.AppendJSONString(dst, unsafeString(text))
	} else {
		dst = append(dst, "null"...)
	}
	if hasReasoning {
		dst = append(dst, `,"reasoning_content":`...)
		dst = gjson.AppendJSONString(dst, unsafeString(reasoning))
	}
	return dst
}
