package abi

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// batchHandle is otherHandle with the writes a Batch makes.
type batchHandle struct {
	otherHandle
	route any // the per-route config
}

func (h *batchHandle) SetMetadata(ns, key string, value any) {
	h.calls = append(h.calls, fmt.Sprintf("SetMetadata %s/%s %T %v", ns, key, value, value))
}

func (h *batchHandle) SetFilterState(key string, value []byte) {
	h.calls = append(h.calls, "SetFilterState "+key+" "+string(value))
}

func (h *batchHandle) ClearRouteCache() { h.calls = append(h.calls, "ClearRouteCache") }

func (h *batchHandle) GetMostSpecificConfig() any {
	h.calls = append(h.calls, "GetMostSpecificConfig")
	return h.route
}

// batchHeaders is otherHeaders with Set and Remove.
type batchHeaders struct {
	otherHeaders
	h *batchHandle
}

func (m *batchHeaders) Set(key, value string) {
	m.h.calls = append(m.h.calls, "Set "+key+" "+value)
	m.kv = append(m.kv, [2]string{key, value})
}

func (m *batchHeaders) Remove(key string) { m.h.calls = append(m.h.calls, "Remove "+key) }

// Without a direct stream, each op is the SDK's method of the same name,
// called as it is added, in order, with the results the methods return;
// Run then calls nothing.
func TestBatchThroughTheSDK(t *testing.T) {
	h := &batchHandle{}
	m := &batchHeaders{h: h}
	var b Batch
	b.Start(NewStream(h))
	require.False(t, b.Stream().Direct())
	b.SetHeader(m, "x-a", "1")
	got := b.HeaderValue(m, "x-a")
	b.RemoveHeader(m, "x-b")
	b.SetMetadataString("ns", "s", "v")
	b.SetMetadataNumber("ns", "n", 2.5)
	b.SetMetadataUint("ns", "u", 7)
	b.SetFilterState("fs", []byte("state"))
	b.ClearRouteCache()
	counter := b.IncrementCounter(3, 1, "pool")
	hist := b.RecordHistogram(4, 10, "a", "b")
	tagged := b.RecordHistogramTagged(4, 11, []string{"a", "b"}, "input")
	str := b.MetadataString(shared.MetadataSourceTypeDynamic, "ns", "k")
	num := b.MetadataNumber(shared.MetadataSourceTypeDynamic, "ns", "k")
	list := b.MetadataListSize(shared.MetadataSourceTypeDynamic, "ns", "l")
	fs := b.FilterState("fs")
	attr := b.AttributeString(shared.AttributeIDUpstreamAddress)
	conn := b.AttributeNumber(shared.AttributeIDConnectionId)
	noRoute := b.HasRouteConfig()
	h.route = "pool a"
	route := b.HasRouteConfig()
	require.Zero(t, b.Pending())
	b.Run()
	require.Zero(t, b.Calls(), "nothing for Run to do")
	require.Equal(t, []string{
		"Set x-a 1", "Remove x-b",
		"SetMetadata ns/s string v", "SetMetadata ns/n float64 2.5", "SetMetadata ns/u uint64 7",
		"SetFilterState fs state", "ClearRouteCache",
		"IncrementCounterValue pool", "RecordHistogramValue 4 10 a,b", "RecordHistogramValue 4 11 a,b,input",
		"GetMetadataString ns/k", "GetMetadataNumber ns/k", "GetMetadataListSize ns/l", "GetFilterState fs",
		"GetAttributeString", "GetAttributeNumber", "GetMostSpecificConfig", "GetMostSpecificConfig",
	}, h.calls)
	require.False(t, b.OK(noRoute))
	require.True(t, b.OK(route))
	v, ok := b.View(got)
	require.True(t, ok)
	require.Equal(t, "1", v.ToString())
	require.Equal(t, shared.MetricsResult(9), b.Result(counter))
	require.Equal(t, shared.MetricsSuccess, b.Result(hist))
	require.Equal(t, shared.MetricsSuccess, b.Result(tagged))
	v, ok = b.View(str)
	require.True(t, ok)
	require.Equal(t, "v:k", v.ToString())
	n, ok := b.Number(num)
	require.True(t, ok)
	require.Equal(t, 2.5, n)
	n, ok = b.Number(list)
	require.True(t, ok)
	require.Equal(t, 3.0, n)
	v, ok = b.View(fs)
	require.True(t, ok)
	require.Equal(t, "state", v.ToString())
	v, ok = b.View(attr)
	require.True(t, ok)
	require.Equal(t, "10.0.0.1:80", v.ToString())
	n, ok = b.Number(conn)
	require.True(t, ok)
	require.Equal(t, 7.0, n)
	require.Equal(t, 19, b.Len())

	b.Start(NewStream(h))
	require.Zero(t, b.Len(), "Start empties")
}

// Run with nothing pending makes no call from Go (a direct stream's
// filter pointer is never touched), and ops that ran are not run again.
func TestBatchRunsPendingOpsOnly(t *testing.T) {
	var b Batch
	b.Start(Stream{raw: unsafe.Pointer(new(int))})
	require.True(t, b.Stream().Direct())
	b.Run()
	require.Zero(t, b.Calls())
	b.ClearRouteCache()
	require.Equal(t, 1, b.Pending(), "direct: waits for Run")
	b.ran = b.Len() // as Run leaves it, without Envoy to call
	b.Run()
	require.Zero(t, b.Calls())
}

// Keys, values and tags go into the arena, which grows for a long value
// (the offsets stay right); Keep keeps a small batch's room for the
// filter's next stream, not a large one's.
func TestBatchArena(t *testing.T) {
	var b Batch
	b.Start(Stream{raw: unsafe.Pointer(new(int))})
	long := strings.Repeat("x", 100_000)
	b.SetMetadataString("ns", "k", long)
	b.IncrementCounter(1, 1, "t1", "t2")
	tagged := b.RecordHistogramTagged(2, 5, []string{"a"}, "b")
	o := b.ops[0]
	require.Equal(t, "ns", string(b.arena[o.a.off:o.a.off+o.a.len]))
	require.Equal(t, "k", string(b.arena[o.b.off:o.b.off+o.b.len]))
	require.Equal(t, long, string(b.arena[o.c.off:o.c.off+o.c.len]))
	c := b.ops[1]
	require.EqualValues(t, 2, c.nlabels)
	r := b.refs[c.labels+1]
	require.Equal(t, "t2", string(b.arena[r.off:r.off+r.len]))
	tg := b.ops[tagged]
	require.EqualValues(t, 1, tg.nlabels)
	r = b.refs[tg.labels]
	require.Equal(t, "a", string(b.arena[r.off:r.off+r.len]))
	require.EqualValues(t, 1, tg.arg, "one more tag value")
	require.Equal(t, "b", string(b.arena[tg.c.off:tg.c.off+tg.c.len]))

	// Stats with the same tags share their refs; other tags get their own.
	tags := []string{"op", "provider"}
	first := b.RecordHistogram(3, 1, tags...)
	refs := len(b.refs)
	second := b.RecordHistogramTagged(4, 2, tags, "input")
	third := b.IncrementCounter(5, 1, "op", "provider")
	require.Equal(t, refs, len(b.refs), "no new refs for the same tags")
	require.Equal(t, b.ops[first].labels, b.ops[second].labels)
	require.Equal(t, b.ops[first].labels, b.ops[third].labels)
	other := b.IncrementCounter(5, 1, "op", "other")
	require.NotEqual(t, b.ops[first].labels, b.ops[other].labels)
	r = b.refs[b.ops[other].labels+1]
	require.Equal(t, "other", string(b.arena[r.off:r.off+r.len]))

	// Kept for the next stream only while small.
	k := b.Keep(Stream{})
	require.Nil(t, k.arena, "a 100 KB arena is not kept")
	var small Batch
	small.Start(Stream{raw: unsafe.Pointer(new(int))})
	small.ClearRouteCache()
	small.SetMetadataString("ns", "k", "v")
	k = small.Keep(Stream{})
	require.NotNil(t, k.ops)
	require.Zero(t, k.Len())
}

// An op whose bytes would pass what the arena's 32-bit refs address is not
// made: C skips it (no kind) and it reads as failed; the ops around it are
// unchanged, and its tags are not shared with the next metric op.
func TestBatchArenaLimit(t *testing.T) {
	defer func(l int) { arenaLimit = l }(arenaLimit)
	arenaLimit = 64
	var b Batch
	b.Start(Stream{raw: unsafe.Pointer(new(int))})
	before := b.SetMetadataString("ns", "k", "v")
	tooLong := b.SetMetadataString("ns", "k", strings.Repeat("x", 100))
	after := b.SetMetadataString("ns", "k2", "v2")
	require.NotZero(t, b.ops[before].kind)
	require.Zero(t, b.ops[tooLong].kind, "C skips it")
	require.False(t, b.OK(tooLong))
	o := b.ops[after]
	require.Equal(t, b.ops[before].kind, o.kind)
	require.Equal(t, "v2", string(b.arena[o.c.off:o.c.off+o.c.len]))

	tag := strings.Repeat("t", 60)
	m := b.IncrementCounter(1, 1, tag)
	require.Zero(t, b.ops[m].kind)
	require.Equal(t, shared.MetricsInvalidTags, b.Result(m))
	arenaLimit = 1 << 20
	next := b.IncrementCounter(1, 1, tag)
	require.NotZero(t, b.ops[next].kind)
	r := b.refs[b.ops[next].labels]
	require.Equal(t, tag, string(b.arena[r.off:r.off+r.len]), "the failed op's tag refs are not reused")
}

// A header map read through the SDK (no direct stream) is the map's GetAll
// at its place among the ops: it sees the writes before it; its entries
// are appended to the caller's slice; HeaderEntries answers for the last
// read only, once it ran.
func TestBatchHeadersThroughTheSDK(t *testing.T) {
	h := &batchHandle{}
	m := &batchHeaders{h: h}
	m.kv = [][2]string{{":path", "/v1/chat/completions"}}
	var b Batch
	b.Start(NewStream(h))
	require.Nil(t, b.HeaderEntries(0), "no op yet")
	b.SetHeader(m, "x-a", "1")
	keep := make([][2]shared.UnsafeEnvoyBuffer, 1, 8)
	first := b.Headers(m, keep[:1])
	b.SetHeader(m, "x-b", "2")
	second := b.Headers(m, nil)
	b.Run()
	require.Nil(t, b.HeaderEntries(first), "an earlier read: its entries were the caller's to take")
	got := b.HeaderEntries(second)
	require.Len(t, got, 3)
	require.Equal(t, "x-b", got[2][0].ToString())
	b.Start(NewStream(h))
	first = b.Headers(m, keep[:0])
	require.Equal(t, "/v1/chat/completions", b.HeaderEntries(first)[0][1].ToString())
	require.Same(t, &keep[0], &b.HeaderEntries(first)[0], "into the caller's room")
	b.Clear()
	require.Nil(t, b.HeaderEntries(first), "Clear drops them")
}

// SetMetadata with a value boxed by the caller is the typed method's op
// (direct) or the SDK's SetMetadata with that very value: no allocation.
func TestBatchSetMetadataBoxed(t *testing.T) {
	h := &batchHandle{}
	var b Batch
	b.Start(NewStream(h))
	var s, n, u, other any = "v", 2.5, uint64(7), true
	b.SetMetadata("ns", "s", s)
	b.SetMetadata("ns", "n", n)
	b.SetMetadata("ns", "u", u)
	b.SetMetadata("ns", "b", other)
	require.Equal(t, []string{"SetMetadata ns/s string v", "SetMetadata ns/n float64 2.5", "SetMetadata ns/u uint64 7", "SetMetadata ns/b bool true"}, h.calls)
	k := &keepHandle{}
	b.Start(NewStream(k))
	require.Zero(t, testing.AllocsPerRun(100, func() {
		b.Clear()
		b.SetMetadata("ns", "s", s)
	}))
	require.Equal(t, s, k.last)
}

// keepHandle keeps the last metadata value set, as it came.
type keepHandle struct {
	otherHandle
	last any
}

func (h *keepHandle) SetMetadata(_, _ string, value any) { h.last = value }
