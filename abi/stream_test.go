package abi

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// otherHandle is a handle that is not the SDK's: a Stream made from it calls
// it for everything.
type otherHandle struct {
	shared.HttpFilterHandle
	calls []string
}

func buf(s string) shared.UnsafeEnvoyBuffer {
	return shared.UnsafeEnvoyBuffer{Ptr: unsafe.StringData(s), Len: uint64(len(s))}
}

func (h *otherHandle) GetMetadataString(src shared.MetadataSourceType, ns, key string) (shared.UnsafeEnvoyBuffer, bool) {
	h.calls = append(h.calls, "GetMetadataString "+ns+"/"+key)
	return buf("v:" + key), src == shared.MetadataSourceTypeDynamic
}

func (h *otherHandle) GetMetadataNumber(_ shared.MetadataSourceType, ns, key string) (float64, bool) {
	h.calls = append(h.calls, "GetMetadataNumber "+ns+"/"+key)
	return 2.5, true
}

func (h *otherHandle) GetMetadataListSize(_ shared.MetadataSourceType, ns, key string) (int, bool) {
	h.calls = append(h.calls, "GetMetadataListSize "+ns+"/"+key)
	return 3, true
}

func (h *otherHandle) GetMetadataListString(_ shared.MetadataSourceType, ns, key string, i int) (shared.UnsafeEnvoyBuffer, bool) {
	h.calls = append(h.calls, "GetMetadataListString "+ns+"/"+key)
	return buf([]string{"a", "", "c"}[i]), true
}

func (h *otherHandle) GetAttributeString(id shared.AttributeID) (shared.UnsafeEnvoyBuffer, bool) {
	h.calls = append(h.calls, "GetAttributeString")
	return buf("10.0.0.1:80"), id == shared.AttributeIDUpstreamAddress
}

func (h *otherHandle) GetAttributeNumber(shared.AttributeID) (float64, bool) {
	h.calls = append(h.calls, "GetAttributeNumber")
	return 7, true
}

func (h *otherHandle) GetFilterState(key string) (shared.UnsafeEnvoyBuffer, bool) {
	h.calls = append(h.calls, "GetFilterState "+key)
	return buf("state"), true
}

func (h *otherHandle) RecordHistogramValue(id shared.MetricID, v uint64, tags ...string) shared.MetricsResult {
	h.calls = append(h.calls, fmt.Sprintf("RecordHistogramValue %d %d %s", id, v, strings.Join(tags, ",")))
	return shared.MetricsSuccess
}

func (h *otherHandle) IncrementCounterValue(_ shared.MetricID, v uint64, tags ...string) shared.MetricsResult {
	h.calls = append(h.calls, "IncrementCounterValue "+tags[0])
	return shared.MetricsResult(9)
}

// A Stream of a handle that is not the SDK's returns exactly what the
// handle's methods return, one call each.
func TestStreamFallsBackToTheHandle(t *testing.T) {
	h := &otherHandle{}
	s := NewStream(h)
	require.False(t, s.Direct())
	require.Same(t, h, s.Handle())

	v, ok := s.MetadataString(shared.MetadataSourceTypeDynamic, "ns", "k")
	require.True(t, ok)
	require.Equal(t, "v:k", v.ToString())
	_, ok = s.MetadataString(shared.MetadataSourceTypeHost, "ns", "k")
	require.False(t, ok)
	n, ok := s.MetadataNumber(shared.MetadataSourceTypeDynamic, "ns", "n")
	require.True(t, ok)
	require.Equal(t, 2.5, n)
	size, ok := s.MetadataListSize(shared.MetadataSourceTypeDynamic, "ns", "l")
	require.True(t, ok)
	require.Equal(t, 3, size)
	e, ok := s.MetadataListString(shared.MetadataSourceTypeDynamic, "ns", "l", 1)
	require.True(t, ok)
	require.Empty(t, e.ToString())
	a, ok := s.AttributeString(shared.AttributeIDUpstreamAddress)
	require.True(t, ok)
	require.Equal(t, "10.0.0.1:80", a.ToString())
	id, ok := s.AttributeNumber(shared.AttributeIDConnectionId)
	require.True(t, ok)
	require.Equal(t, 7.0, id)
	fs, ok := s.FilterState("key")
	require.True(t, ok)
	require.Equal(t, "state", fs.ToString())
	require.Equal(t, shared.MetricsSuccess, s.RecordHistogramValue(1, 2, "t1", "t2"))
	require.Equal(t, shared.MetricsResult(9), s.IncrementCounterValue(1, 2, "c1"))
	require.Equal(t, []string{"GetMetadataString ns/k", "GetMetadataString ns/k", "GetMetadataNumber ns/n", "GetMetadataListSize ns/l",
		"GetMetadataListString ns/l", "GetAttributeString", "GetAttributeNumber", "GetFilterState key",
		"RecordHistogramValue 1 2 t1,t2", "IncrementCounterValue c1"}, h.calls)
	require.Nil(t, sdkHandleType.Load(), "a fake is not remembered as the SDK's type")
}

// otherHeaders is a header map that is not the SDK's: Headers and
// HeaderValue use its methods.
type otherHeaders struct {
	shared.HeaderMap
	kv [][2]string
}

func (m *otherHeaders) GetOne(key string) shared.UnsafeEnvoyBuffer {
	for _, kv := range m.kv {
		if kv[0] == key {
			return buf(kv[1])
		}
	}
	return shared.UnsafeEnvoyBuffer{}
}

func (m *otherHeaders) GetAll() [][2]shared.UnsafeEnvoyBuffer {
	var out [][2]shared.UnsafeEnvoyBuffer
	for _, kv := range m.kv {
		out = append(out, [2]shared.UnsafeEnvoyBuffer{buf(kv[0]), buf(kv[1])})
	}
	return out
}

func TestHeadersFallBackToTheMap(t *testing.T) {
	m := &otherHeaders{kv: [][2]string{{":path", "/v1/chat/completions"}, {"accept", "a"}, {"accept", "b"}}}
	require.Equal(t, "/v1/chat/completions", HeaderValue(m, ":path").ToString())
	require.Equal(t, "a", HeaderValue(m, "accept").ToString())
	require.Zero(t, HeaderValue(m, "nope").Len)
	dst := make([][2]shared.UnsafeEnvoyBuffer, 1, 8) // appended to, as the filters reuse it
	got := Headers(m, dst)
	require.Len(t, got, 4)
	require.Equal(t, "accept", got[3][0].ToString())
	require.Equal(t, "b", got[3][1].ToString())
	v := make([]shared.UnsafeEnvoyBuffer, 3)
	HeaderValues(m, []string{"accept", "nope", ":path"}, v)
	require.Equal(t, "a", v[0].ToString())
	require.Zero(t, v[1].Len)
	require.Equal(t, "/v1/chat/completions", v[2].ToString())
	require.Nil(t, sdkHeadersType.Load(), "a fake is not remembered as the SDK's type")
}

// The test's own types of the SDK's names and layouts, in another package:
// none passes for the SDK's.
type dymHttpFilterHandle struct {
	//lint:ignore U1000 read by reflection only
	hostPluginPtr unsafe.Pointer
}

type dymHeaderMap struct {
	//lint:ignore U1000 read by reflection only
	hostPluginPtr unsafe.Pointer
	//lint:ignore U1000 read by reflection only
	headerType uint32
}

func TestLayoutChecksNameAndPackage(t *testing.T) {
	require.False(t, isSDKHandle(reflect.TypeOf(&dymHttpFilterHandle{})), "same name and layout, another package")
	require.False(t, isSDKHandle(reflect.TypeOf(dymHttpFilterHandle{})), "not a pointer")
	require.False(t, isSDKHandle(reflect.TypeOf(&otherHandle{})))
	require.False(t, isSDKHandle(nil))
	require.False(t, isSDKHeaders(reflect.TypeOf(&dymHeaderMap{})), "same name and layout, another package")
	require.False(t, isSDKHeaders(reflect.TypeOf(&otherHeaders{})))
	require.False(t, isSDKHeaders(nil))
	require.False(t, isSDKHeaders(reflect.TypeOf(&dymBodyBuffer{})), "another type of the same layout")
}

// checkedType remembers the first type its check passes and then takes
// that type only; INFERENCEPOOL_ABI_DIRECT=off (directOff) takes none.
func TestCheckedTypeRemembersTheFirstType(t *testing.T) {
	pass := func(reflect.Type) bool { return true }
	a, b := reflect.TypeOf(&dymHeaderMap{}), reflect.TypeOf(&dymHttpFilterHandle{})

	var known atomic.Pointer[reflect.Type]
	require.False(t, checkedType(&known, a, func(reflect.Type) bool { return false }))
	require.Nil(t, known.Load())
	require.True(t, checkedType(&known, a, pass))
	require.True(t, checkedType(&known, a, func(reflect.Type) bool { panic("not checked again") }))
	require.False(t, checkedType(&known, b, pass), "another type, once one is known")

	defer func(off bool) { directOff = off }(directOff)
	directOff = true
	var off atomic.Pointer[reflect.Type]
	require.False(t, checkedType(&off, a, pass))
	require.False(t, checkedType(&known, a, pass), "off wins over a known type")
}
