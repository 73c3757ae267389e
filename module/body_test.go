package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// countingBody counts the reads of a body buffer (each one a crossing
// into Envoy).
type countingBody struct {
	fakeBody
	reads int
}

func (c *countingBody) GetChunks() []shared.UnsafeEnvoyBuffer {
	c.reads++
	return c.fakeBody.GetChunks()
}
func (c *countingBody) GetSize() uint64 { c.reads++; return c.fakeBody.GetSize() }

// A request body in frames: without content-length each frame is checked
// against the limit as it comes (413 once over it, before the end); under
// a content-length checked at the headers, the frames before the last are
// not read at all, and the last one is read once, slices and all.
func TestRouterBodyFrames(t *testing.T) {
	rc := routerRig(t, `{"maxRequestBodyBytes":1024}`)
	frame := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("a", 560) + ``

	t.Run("no content-length, over the limit mid-stream", func(t *testing.T) {
		s := newFakeStream()
		s.reqHeaders.kv = [][2]string{{":method", "POST"}, {":path", "/v1/chat/completions"}, {"content-type", "application/json"}}
		f := newRouterFilter(rc, s)
		require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s.reqHeaders, false))
		require.Equal(t, shared.BodyStatusStopAndBuffer, f.OnRequestBody(&fakeBody{b: []byte(frame)}, false))
		s.buffered.b = append(s.buffered.b, frame...)
		require.Equal(t, shared.BodyStatusStopNoBuffer, f.OnRequestBody(&fakeBody{b: []byte(frame)}, false))
		requireOpenAIError(t, s, 413, "request_too_large")
	})

	t.Run("content-length checked: frames before the last are not read", func(t *testing.T) {
		last := `"}]}`
		body := frame + last
		s := newFakeStream()
		chatHeaders(s, []byte(body))
		f := newRouterFilter(rc, s)
		require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s.reqHeaders, false))
		first := &countingBody{fakeBody: fakeBody{b: []byte(frame)}}
		require.Equal(t, shared.BodyStatusStopAndBuffer, f.OnRequestBody(first, false))
		require.Zero(t, first.reads)
		s.buffered.b = append(s.buffered.b, frame...)
		s.buffered.split = 100 // Envoy's buffer in several slices
		end := &countingBody{fakeBody: fakeBody{b: []byte(last)}}
		require.Equal(t, shared.BodyStatusContinue, f.OnRequestBody(end, true))
		require.Equal(t, 1, end.reads, "the last frame is read once")
		require.Equal(t, "m", s.reqHeaders.GetOne(headerModel).ToString())
		require.Equal(t, strconv.Itoa(len(body)), s.reqHeaders.GetOne("content-length").ToString())
		require.Zero(t, s.replies)
		f.OnDestroy()
	})
}
