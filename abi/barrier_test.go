package abi

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// fakeHandle records what the barrier reports; the other methods panic
// through the nil interface, which the barrier must contain too.
type fakeHandle struct {
	shared.HttpFilterHandle
	panics  uint64
	logs    int
	replies []reply
	failAll bool // every call panics, as a broken host would
}

type reply struct {
	status uint32
	body   []byte
	detail string
}

func (h *fakeHandle) IncrementCounterValue(_ shared.MetricID, v uint64, _ ...string) shared.MetricsResult {
	if h.failAll {
		panic("host is broken")
	}
	h.panics += v
	return shared.MetricsSuccess
}

func (h *fakeHandle) Log(shared.LogLevel, string, ...any) { h.logs++ }

func (h *fakeHandle) SendLocalResponse(status uint32, _ [][2]string, body []byte, detail string) {
	h.replies = append(h.replies, reply{status, body, detail})
}

// hookFilter panics in the hook named by panicIn and counts every call.
type hookFilter struct {
	panicIn  string
	calls    map[string]int
	complete int
	destroy  int
}

func (f *hookFilter) hit(hook string) {
	f.calls[hook]++
	if f.panicIn == hook {
		panic("boom in " + hook)
	}
}

func (f *hookFilter) OnRequestHeaders(shared.HeaderMap, bool) shared.HeadersStatus {
	f.hit("request_headers")
	return shared.HeadersStatusContinue
}
func (f *hookFilter) OnRequestBody(shared.BodyBuffer, bool) shared.BodyStatus {
	f.hit("request_body")
	return shared.BodyStatusContinue
}
func (f *hookFilter) OnRequestTrailers(shared.HeaderMap) shared.TrailersStatus {
	f.hit("request_trailers")
	return shared.TrailersStatusContinue
}
func (f *hookFilter) OnResponseHeaders(shared.HeaderMap, bool) shared.HeadersStatus {
	f.hit("response_headers")
	return shared.HeadersStatusContinue
}
func (f *hookFilter) OnResponseBody(shared.BodyBuffer, bool) shared.BodyStatus {
	f.hit("response_body")
	return shared.BodyStatusContinue
}
func (f *hookFilter) OnResponseTrailers(shared.HeaderMap) shared.TrailersStatus {
	f.hit("response_trailers")
	return shared.TrailersStatusContinue
}
func (f *hookFilter) OnStreamComplete() { f.complete++; f.hit("stream_complete") }
func (f *hookFilter) OnDestroy()        { f.destroy++; f.hit("destroy") }

// stream runs every hook once, in Envoy's order, and returns the statuses.
func stream(g shared.HttpFilter) []any {
	out := []any{
		g.OnRequestHeaders(nil, false), g.OnRequestBody(nil, true), g.OnRequestTrailers(nil),
		g.OnResponseHeaders(nil, false), g.OnResponseBody(nil, true), g.OnResponseTrailers(nil),
	}
	g.OnStreamComplete()
	g.OnDestroy()
	return out
}

func requireInternalError(t *testing.T, h *fakeHandle, filter string) {
	t.Helper()
	require.Len(t, h.replies, 1, "exactly one local reply")
	r := h.replies[0]
	require.EqualValues(t, 500, r.status)
	require.Equal(t, PanicDetail, r.detail)
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	require.NoError(t, json.Unmarshal(r.body, &e))
	require.Contains(t, e.Error.Message, filter)
	require.Equal(t, "internal_error", e.Error.Code)
}

func TestBarrierRequestPathPanic(t *testing.T) {
	for _, tc := range []struct {
		hook string
		want []any
	}{
		{"request_headers", []any{shared.HeadersStatusStop, shared.BodyStatusStopNoBuffer, shared.TrailersStatusStop,
			shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusContinue}},
		{"request_body", []any{shared.HeadersStatusContinue, shared.BodyStatusStopNoBuffer, shared.TrailersStatusStop,
			shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusContinue}},
		{"request_trailers", []any{shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusStop,
			shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusContinue}},
	} {
		t.Run(tc.hook, func(t *testing.T) {
			h := &fakeHandle{}
			inner := &hookFilter{panicIn: tc.hook, calls: map[string]int{}}
			got := stream((&Barrier{Filter: "f"}).Guard(h, inner))
			require.Equal(t, tc.want, got)
			requireInternalError(t, h, "f")
			require.EqualValues(t, 1, h.panics)
			require.Equal(t, 1, inner.calls[tc.hook])
			require.Zero(t, inner.calls["response_headers"], "a poisoned filter is not called again")
			require.Equal(t, 1, inner.complete, "stream complete still releases what the filter holds")
			require.Equal(t, 1, inner.destroy)
		})
	}
}

func TestBarrierResponsePathPanicPassesThrough(t *testing.T) {
	for _, hook := range []string{"response_headers", "response_body", "response_trailers", "stream_complete", "destroy"} {
		t.Run(hook, func(t *testing.T) {
			h := &fakeHandle{}
			inner := &hookFilter{panicIn: hook, calls: map[string]int{}}
			got := stream((&Barrier{Filter: "f"}).Guard(h, inner))
			require.Equal(t, []any{shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusContinue,
				shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusContinue}, got)
			require.Empty(t, h.replies, "the response path never answers")
			require.EqualValues(t, 1, h.panics)
			require.Equal(t, 1, inner.complete)
			require.Equal(t, 1, inner.destroy)
			if hook == "response_headers" {
				require.Zero(t, inner.calls["response_body"], "a poisoned filter is not called again")
			}
		})
	}
}

func TestBarrierReportingPanicIsContained(t *testing.T) {
	h := &fakeHandle{failAll: true}
	inner := &hookFilter{panicIn: "request_headers", calls: map[string]int{}}
	g := (&Barrier{Filter: "f"}).Guard(h, inner)
	require.NotPanics(t, func() { stream(g) })
	require.Equal(t, 1, inner.complete)
}

// A filter that cannot be built is counted and logged once, and answers 500
// at its first request hook.
func TestFactoryConstructionPanic(t *testing.T) {
	h := &fakeHandle{}
	f := &Factory{Barrier: &Barrier{Filter: "f"}, NewFilter: func(shared.HttpFilterHandle) shared.HttpFilter { panic("no filter") }}
	var g shared.HttpFilter
	require.NotPanics(t, func() { g = f.Create(h) })
	require.Empty(t, h.replies, "no reply before the stream's first hook")
	got := stream(g)
	require.Equal(t, []any{shared.HeadersStatusStop, shared.BodyStatusStopNoBuffer, shared.TrailersStatusStop,
		shared.HeadersStatusContinue, shared.BodyStatusContinue, shared.TrailersStatusContinue}, got)
	requireInternalError(t, h, "f")
	require.EqualValues(t, 1, h.panics, "one panic, counted once")
	require.Equal(t, 1, h.logs, "one panic, logged once")
}

func TestFactoryDestroyPanicIsContained(t *testing.T) {
	f := &Factory{Barrier: &Barrier{Filter: "f"}, Destroy: func() { panic("close") }}
	require.NotPanics(t, f.OnDestroy)
}

func TestGuardScheduledPanicAnswers500(t *testing.T) {
	h := &fakeHandle{}
	ran := false
	(&Barrier{Filter: "f"}).GuardScheduled(h, func() { ran = true })()
	require.True(t, ran)
	require.Empty(t, h.replies)

	require.NotPanics(t, (&Barrier{Filter: "f"}).GuardScheduled(h, func() { panic("late") }))
	requireInternalError(t, h, "f")
	require.EqualValues(t, 1, h.panics)
}

type panickyConfigFactory struct{}

func (panickyConfigFactory) Create(shared.HttpFilterConfigHandle, []byte) (shared.HttpFilterFactory, error) {
	panic("bad config")
}
func (panickyConfigFactory) CreatePerRoute([]byte) (any, error) { panic("bad route") }

func TestGuardConfigFactory(t *testing.T) {
	old := CgoCheckOK
	t.Cleanup(func() { CgoCheckOK = old })
	g := GuardConfigFactory(panickyConfigFactory{})

	CgoCheckOK = true
	ff, err := g.Create(nil, nil)
	require.Nil(t, ff)
	require.ErrorContains(t, err, "panic while creating filter config: bad config")
	rc, err := g.CreatePerRoute(nil)
	require.Nil(t, rc)
	require.ErrorContains(t, err, "panic while creating per-route config: bad route")

	CgoCheckOK = false
	_, err = g.Create(nil, nil)
	require.True(t, errors.Is(err, ErrCgoCheck))
}
