package main

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// A reused filter is indistinguishable from a new one: every field is as
// a composite literal with only cfg and h leaves it, except the buffers a
// pool keeps, which must be empty. A field that reset forgot (or a new kept
// buffer left with content) fails here.
func TestReusedFilterIsNew(t *testing.T) {
	rc := routerRig(t, `{"rewrites":[{"model":"m","targets":[{"model":"m-v2"}]}],"costs":[{"metadataKey":"t","type":"total"}],`+
		`"budget":{"header":"x-api-key","tokens":100000}}`)
	s := newFakeStream()
	f, ok := startChat(t, rc, s, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, [2]string{"x-api-key", "k"})
	require.True(t, ok)
	s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "text/event-stream"}}
	f.OnResponseHeaders(&s.respHeaders, false)
	f.OnResponseBody(&fakeBody{b: []byte(`data: {"model":"m-v2","choices":[{"delta":{"content":"x"}}]}` + "\n\n")}, false)
	f.OnStreamComplete()
	f.OnDestroy()
	require.NotNil(t, f.restorer, "the stream used the model restorer")
	// Each step on its own: reset on a used filter, and release, which
	// lets go of the stream's state while the filter waits in the pool.
	s2 := newFakeStream()
	used := *f
	used.reset(rc, s2)
	requireFresh(t, reflect.ValueOf(&used).Elem(), reflect.ValueOf(&aiRouterFilter{cfg: rc, h: s2, s: abi.NewStream(s2)}).Elem(), "restored", "stripped", "hdrs", "chunks", "backendBuf", "ownMeter", "b")
	require.Empty(t, used.hdrs.kv)
	require.Zero(t, used.b.Len(), "the batch keeps its room, no op")
	require.Equal(t, abi.NewStream(s2), used.b.Stream())
	require.Empty(t, used.hdrs.buf)
	releaseFilter(f)
	requireFresh(t, reflect.ValueOf(f).Elem(), reflect.ValueOf(&aiRouterFilter{}).Elem(), "restored", "stripped", "hdrs", "chunks", "backendBuf", "ownMeter", "b")

	c := newChain(t, metricsServers(t, 2))
	ps := newFakeStream()
	ps.metadata[metadataSubsetNS+"/"+metadataSubsetKey] = "127.0.0.1:1"
	p := c.picker.Create(ps) // behind the barrier: the picker is inside
	p.OnRequestHeaders(&ps.reqHeaders, true)
	p.OnStreamComplete()
	p.OnDestroy()
	pf := newPickerFilter(nil, ps)
	pf.req.Subset = append(pf.req.Subset, "10.0.0.1:1")
	pf.req.HasSubset, pf.picked, pf.decided, pf.dest = true, true, true, "10.0.0.1:1"
	pf.body = append(pf.body, "old body"...)
	usedPicker := *pf
	usedPicker.reset(nil, s2)
	requireFresh(t, reflect.ValueOf(&usedPicker).Elem(), reflect.ValueOf(&endpointPickerFilter{h: s2, s: abi.NewStream(s2)}).Elem(), "body", "req", "chunks", "b")
	require.Empty(t, usedPicker.req.Subset)
	require.Zero(t, usedPicker.b.Len(), "the batch keeps its room, no op")
	require.Equal(t, abi.NewStream(s2), usedPicker.b.Stream())
	require.False(t, usedPicker.req.HasSubset)
	releaseFilter(pf)
	requireFresh(t, reflect.ValueOf(pf).Elem(), reflect.ValueOf(&endpointPickerFilter{}).Elem(), "body", "req", "chunks", "b")
}

// requireFresh checks got field by field against want, except kept
// buffers, which must be empty.
func requireFresh(t *testing.T, got, want reflect.Value, kept ...string) {
	t.Helper()
	for i := range got.NumField() {
		name := got.Type().Field(i).Name
		g, w := got.Field(i), want.Field(i)
		if isKept(name, kept) {
			if g.Kind() == reflect.Slice {
				require.Zero(t, g.Len(), "kept buffer %s must be empty", name)
			}
			continue
		}
		require.True(t, reflect.DeepEqual(valueOf(g), valueOf(w)), "field %s of a reused filter is not as new: %v", name, valueOf(g))
	}
}

func isKept(name string, kept []string) bool {
	for _, k := range kept {
		if k == name {
			return true
		}
	}
	return false
}

// valueOf reads a field, exported or not, for comparison.
func valueOf(v reflect.Value) any {
	if !v.CanInterface() {
		return reflect.NewAt(v.Type(), v.Addr().UnsafePointer()).Elem().Interface()
	}
	return v.Interface()
}

// Stream A rewrote the model and stripped the usage chunk; stream B, on
// the same filter after reuse, asked for its own model: its answer passes
// unchanged and it is charged its own usage, nothing of A's.
func TestReusedRouterCarriesNothingOver(t *testing.T) {
	rc := routerRig(t, `{"rewrites":[{"model":"m","targets":[{"model":"m-v2"}]}],"costs":[{"metadataKey":"t","type":"total"}]}`)
	s := newFakeStream()
	f, ok := startChat(t, rc, s, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	require.True(t, ok)
	s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "text/event-stream"}}
	f.OnResponseHeaders(&s.respHeaders, false)
	f.OnResponseBody(&fakeBody{b: []byte(`data: {"model":"m-v2","choices":[{"delta":{"content":"x"}}]}` + "\n\n")}, false)
	f.OnDestroy() // cut short: no stream_complete
	releaseFilter(f)

	s2 := newFakeStream()
	body := `{"model":"other","messages":[{"role":"user","content":"hi"}]}`
	chatHeaders(s2, []byte(body))
	f.reset(rc, s2)
	require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s2.reqHeaders, false))
	require.Equal(t, shared.BodyStatusContinue, f.OnRequestBody(&fakeBody{b: []byte(body)}, true))
	require.Equal(t, "other", s2.reqHeaders.GetOne(headerModel).ToString())
	s2.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "application/json"}}
	f.OnResponseHeaders(&s2.respHeaders, false)
	answer := `{"model":"other","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	out := &fakeBody{b: []byte(answer)}
	f.OnResponseBody(out, true)
	require.Equal(t, answer, string(out.b), "B's answer is not rewritten with A's model")
	require.False(t, strings.Contains(string(out.b), "m-v2"))
	f.OnStreamComplete()
	require.EqualValues(t, 7, s2.metadata["io.envoy.ai_gateway/t"])
	f.OnDestroy()
}

// Streams on several workers at once take and return pooled filters and
// guards: each stream sees only its own (run with -race).
func TestPooledFiltersAcrossWorkers(t *testing.T) {
	c := newChain(t, metricsServers(t, 3))
	warm := newFakeStream()
	req := benchRequest(4 << 10)
	require.Eventually(t, func() bool { return c.exchange(warm, req, benchResponse) != "" }, 5*time.Second, 10*time.Millisecond)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newFakeStream()
			s.conn = uint64(w + 1)
			for range 200 {
				if c.exchange(s, req, benchResponse) == "" || s.reqHeaders.GetOne(headerModel).ToString() != "sim-model" ||
					s.metadata["io.envoy.ai_gateway/llm_total_token"] != uint64(1033) {
					t.Errorf("worker %d: an exchange lost its own state: %v", w, s.metadata)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// An ai_upstream filter back from its pool is as new, its kept buffers
// empty, and serves its next attempt as a new filter would.
func TestReusedUpstreamFilterIsNew(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	writeKey(t, k, "sk-oai")
	cfg, err := upstreamConfig(t, `{"backends":[{"name":"a","schema":"openai","model":"m-v2","apiKeyFile":"`+k+`"}]}`)
	require.NoError(t, err)
	s := newUpstreamStream([2]string{"accept-encoding", "gzip"}, [2]string{"x-api-key", "client"})
	f := newUpstreamFilter(cfg, s)
	runAttempt(t, f, s, upstreamChat)
	s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "application/json"}}
	f.OnResponseHeaders(&s.respHeaders, false)
	f.OnResponseBody(&fakeBody{b: []byte(`{"model":"m-v2","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)}, true)
	f.OnDestroy()
	kept := []string{"out", "hdrs", "origBuf", "chunks", "b", "trs"} // trs: transform's TestTranslatorsReuseGivesAFreshTranslator
	s2 := newUpstreamStream()
	used := *f
	used.reset(cfg, s2)
	requireFresh(t, reflect.ValueOf(&used).Elem(), reflect.ValueOf(&aiUpstreamFilter{cfg: cfg, h: s2, s: abi.NewStream(s2)}).Elem(), kept...)
	require.Empty(t, used.hdrs.kv)
	require.Empty(t, used.hdrs.buf)
	require.Zero(t, used.b.Len(), "the batch keeps its room, no op")
	require.Equal(t, abi.NewStream(s2), used.b.Stream())
	releaseFilter(f)
	requireFresh(t, reflect.ValueOf(f).Elem(), reflect.ValueOf(&aiUpstreamFilter{}).Elem(), kept...)
	require.Equal(t, abi.Stream{}, f.b.Stream(), "the pooled filter lets go of the stream")

	// The next attempt, on another stream, sees nothing of the first.
	f.reset(cfg, s2)
	runAttempt(t, f, s2, upstreamChat)
	h := headerMap(&s2.reqHeaders)
	require.Equal(t, "Bearer sk-oai", h["authorization"])
	require.NotContains(t, h, "accept-encoding", "the first stream's accept-encoding is not the second's")
	require.Equal(t, "/v1/chat/completions\n", string(s2.filterState[originalRequestKey]))
}
