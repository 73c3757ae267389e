// Package conformance holds the faithfulness tests of abihost itself: a
// scripted module (test/abihost/testmodule, built with the same Go SDK)
// returns chosen statuses from its hooks and logs what it observes; these
// tests check that abihost iterates the chain and keeps stream state as
// Envoy v1.39's filter manager does (DESIGN.md section 9).
package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

type M = map[string]any

func scriptHost(t *testing.T, opts harness.Options) *harness.Host {
	t.Helper()
	return harness.StartScripted(t, opts)
}

func script(name string, v M) harness.Filter { return harness.Script(name, v) }

func logs(s *harness.Stream, prefix string) []string { return s.LogsWithPrefix(prefix) }

var reqHeaders = harness.Headers{{":method", "POST"}, {":path", "/p"}, {":authority", "h"}, {":scheme", "http"}}

func open(t *testing.T, h *harness.Host) *harness.Stream {
	t.Helper()
	s, err := h.Open(harness.StreamOptions{})
	require.NoError(t, err)
	return s
}

func end(t *testing.T, s *harness.Stream) *harness.StreamState {
	t.Helper()
	st, err := s.End()
	require.NoError(t, err)
	return st
}

func kinds(ev []harness.Event) []string { return harness.Kinds(ev) }

func waitFor(t *testing.T, s *harness.Stream, cond func([]harness.Event) bool) []harness.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := s.Wait(ctx, cond)
	require.NoError(t, err)
	return ev
}

// Headers StopIteration still lets body frames reach the filter; its
// StopIterationAndBuffer moves them into the shared buffered body; at end of
// stream the last frame joins that body; its Continue resumes the headers and
// the next filter sees the whole body as one frame with end of stream.
func TestHostHeadersStopThenBodyContinue(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_headers": []M{{"status": "stop"}}, "request_body": []M{{"status": "buffer"}, {"status": "continue"}}}),
		script("b", M{}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("one"), false))
	require.Empty(t, s.Events(), "nothing passes a stopped filter")
	require.NoError(t, s.RequestData([]byte("two"), true))
	require.Equal(t, []string{
		`obs a request_headers eos=0 recv="" buf="" rb=0`,
		`obs a request_body eos=0 recv="one" buf="" rb=0`,
		`obs a request_body eos=1 recv="" buf="onetwo" rb=0`,
		`obs b request_headers eos=0 recv="" buf="" rb=0`,
		`obs b request_body eos=1 recv="onetwo" buf="onetwo" rb=1`,
	}, logs(s, "obs"))
	require.Equal(t, []string{"up_headers", "up_data:onetwo+eos"}, kinds(s.Events()))
	end(t, s)
}

// A Continue from the first body frame resumes headers stopped with
// StopIteration; the frame reaches the next filter as the buffered body.
func TestHostHeadersStopResumedByFirstBodyFrame(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"status": "stop"}}}), script("b", M{})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("x"), true))
	require.Equal(t, []string{
		`obs a request_headers eos=0 recv="" buf="" rb=0`,
		`obs a request_body eos=1 recv="x" buf="" rb=0`,
		`obs b request_headers eos=0 recv="" buf="" rb=0`,
		`obs b request_body eos=1 recv="x" buf="x" rb=1`,
	}, logs(s, "obs"))
	require.Equal(t, []string{"up_headers", "up_data:x+eos"}, kinds(s.Events()))
	end(t, s)
}

// StopAllIterationAndBuffer buffers frames without calling the filter; the
// continue (from a scheduled callback) replays them to it as one frame.
func TestHostStopAllBuffersAndReplays(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_headers": []M{{"status": "stop_all_buffer", "continue_after_ms": 20}}}),
		script("b", M{}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("x"), false))
	require.NoError(t, s.RequestData([]byte("y"), true))
	waitFor(t, s, harness.RequestLeft)
	require.Equal(t, []string{
		`obs a request_headers eos=0 recv="" buf="" rb=0`,
		`obs a scheduled-continue request_headers`,
		`obs b request_headers eos=0 recv="" buf="" rb=0`,
		`obs a request_body eos=1 recv="xy" buf="xy" rb=1`,
		`obs b request_body eos=1 recv="xy" buf="xy" rb=1`,
	}, logs(s, "obs"))
	require.Equal(t, []string{"up_headers", "up_data:xy+eos"}, kinds(s.Events()))
	st := end(t, s)
	require.Equal(t, 1, st.ScheduledDelivered)
	require.Equal(t, 1, st.ForeignThreadCommits)
}

// A local reply from a request hook ends request iteration; the reply goes
// through the other filters' response hooks in reverse order, not the
// sender's, and a filter that never saw the request sees the response.
func TestHostLocalReplyThroughOtherFilters(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{}),
		script("b", M{"request_headers": []M{{"reply": M{"status": 403, "body": "denied", "headers": [][2]string{{"X-R", "1"}}}}}}),
		script("c", M{}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}}, true))
	require.Equal(t, []string{
		`obs a request_headers eos=1 recv="" buf="" rb=0`,
		`obs b request_headers eos=1 recv="" buf="" rb=0`,
		`obs c response_headers eos=0 recv="" buf="" rb=0`,
		`obs a response_headers eos=0 recv="" buf="" rb=0`,
		`obs c response_body eos=1 recv="denied" buf="" rb=0`,
		`obs a response_body eos=1 recv="denied" buf="" rb=0`,
	}, logs(s, "obs"))
	require.Equal(t, []string{"local_reply", "down_headers", "down_data:denied+eos"}, kinds(s.Events()))
	c := s.Client()
	require.Equal(t, 403, c.Status)
	require.Equal(t, "1", c.Headers.Get("x-r"))
	require.Equal(t, "6", c.Headers.Get("content-length"))
	require.Equal(t, "text/plain", c.Headers.Get("content-type"))
	ev := s.Events()
	require.Equal(t, "b", ev[0].Who)
	require.Equal(t, "testmodule_reply", ev[0].Details)
	// Later request data is dropped: the response is complete.
	require.NoError(t, s.RequestData([]byte("late"), true))
	require.Len(t, logs(s, "obs"), 6)
	st := end(t, s)
	require.Equal(t, 403, st.ResponseCode)
	require.Equal(t, 1, st.LocalReplies)
	require.Equal(t, []string{`obs a stream_complete`, `obs b stream_complete`, `obs c stream_complete`}, logs(s, "obs")[6:])
}

// continue_decoding after the filter's last hook returned Continue is
// ignored: nothing runs twice.
func TestHostContinueAfterContinueIsIgnored(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"continue_after_ms": 5}}}), script("b", M{})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	require.Eventually(t, func() bool { return len(logs(s, "obs a scheduled-continue")) == 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, []string{"up_headers+eos"}, kinds(s.Events()))
	require.Len(t, logs(s, "obs b request_headers"), 1)
	st := end(t, s)
	require.Empty(t, st.Violations)
	require.Equal(t, 1, st.ScheduledDelivered)
}

// continue_decoding inside the filter's own hook is a bug abihost reports.
func TestHostContinueInsideOwnHookIsViolation(t *testing.T) {
	h := scriptHost(t, harness.Options{AllowViolations: true})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"status": "stop", "continue_now": true}}}), script("b", M{})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	st := end(t, s)
	require.Len(t, st.Violations, 1)
	require.Contains(t, st.Violations[0], "inside a's own hook")
	require.Empty(t, s.Events())
}

// A handle touched from a goroutine (not inside a hook or a scheduled
// callback) is refused and counted.
func TestHostCallbackFromGoroutineIsRefused(t *testing.T) {
	h := scriptHost(t, harness.Options{AllowViolations: true})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"touch_from_goroutine": true}}})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	st := end(t, s)
	require.Equal(t, 1, st.ForeignThreadCalls)
	require.GreaterOrEqual(t, h.MustStats().ABI.ForeignThreadCalls, 1)
}

// Header maps: lower-case keys, several values per key, set replaces them
// all, an empty value removes the header.
func TestHostHeaderMapSemantics(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_headers": []M{{
			"add": [][3]string{{"req", "X-M", "1"}, {"req", "x-m", "2"}, {"req", "X-Upper", "v"}},
			"set": [][3]string{{"req", "x-gone", "zz"}}}}}),
		script("b", M{"observe": []string{"x-m", "X-UPPER", "x-gone"}, "request_headers": []M{{
			"set": [][3]string{{"req", "x-m", "3"}}, "remove": [][2]string{{"req", "x-gone"}}}}}),
		script("c", M{"observe": []string{"x-m", "x-gone"}, "request_headers": []M{{"set": [][3]string{{"req", "x-empty", "v"}}}}}),
		script("d", M{"observe": []string{"x-empty"}, "request_headers": []M{{"set": [][3]string{{"req", "x-empty", ""}}}}}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	obs := logs(s, "obs")
	require.Equal(t, `obs b request_headers eos=1 recv="" buf="" rb=0 x-m=1|2 X-UPPER=v x-gone=zz`, obs[1])
	require.Equal(t, `obs c request_headers eos=1 recv="" buf="" rb=0 x-m=3 x-gone=`, obs[2])
	require.Equal(t, `obs d request_headers eos=1 recv="" buf="" rb=0 x-empty=v`, obs[3])
	up := s.Upstream()
	require.Equal(t, []string{"3"}, up.Headers.Values("x-m"))
	require.Equal(t, "v", up.Headers.Get("x-upper"))
	require.False(t, up.Headers.Has("x-gone"))
	require.False(t, up.Headers.Has("x-empty"))
	for _, kv := range up.Headers {
		require.Equal(t, strings.ToLower(kv[0]), kv[0])
	}
	end(t, s)
}

// Dynamic metadata of every type in several namespaces, read back by the
// next filter and by the test.
func TestHostDynamicMetadata(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_headers": []M{{"metadata": []M{
			{"ns": "n1", "key": "s", "string": "str"},
			{"ns": "n1", "key": "num", "number": 1.5},
			{"ns": "n1", "key": "b", "bool": true},
			{"ns": "n2", "key": "l", "list": true, "string": "x"},
			{"ns": "n2", "key": "l", "list": true, "number": 2},
			{"ns": "n2", "key": "l", "list": true, "bool": false},
			{"ns": "n1", "key": "s", "list": true, "string": "not a list"},
		}}}}),
		script("b", M{"request_headers": []M{{"read_metadata": []M{
			{"ns": "n1", "key": "s"}, {"ns": "n1", "key": "num"}, {"ns": "n1", "key": "b"}, {"ns": "n2", "key": "l"}, {"ns": "n3", "key": "x"},
		}}}}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	require.Equal(t, []string{"md-add n2 l true", "md-add n2 l true", "md-add n2 l true", "md-add n1 s false"}, logs(s, "md-add"))
	require.Equal(t, []string{
		"md n1 s string=str keys=s,num,b namespaces=n1,n2 route=false",
		"md n1 num number=1.5 keys=s,num,b namespaces=n1,n2 route=false",
		"md n1 b bool=true keys=s,num,b namespaces=n1,n2 route=false",
		"md n2 l list=s:x,n:2,b:false keys=l namespaces=n1,n2 route=false",
		"md n3 x  keys= namespaces=n1,n2 route=false",
	}, logs(s, "md "))
	st := end(t, s)
	require.Equal(t, M{"s": "str", "num": 1.5, "b": true}, M(st.Metadata["n1"]))
	require.Equal(t, []any{"x", float64(2), false}, st.Metadata["n2"]["l"])
}

// Filter state bytes: a key is set once (Envoy stores it read-only).
func TestHostFilterState(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_headers": []M{{"filter_state": [][2]string{{"k", "v1"}}}}}),
		script("b", M{"request_headers": []M{{"filter_state": [][2]string{{"k", "v2"}}, "read_filter_state": []string{"k", "missing"}}}}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	require.Equal(t, []string{`fs k "v1" true`, `fs missing "" false`}, logs(s, "fs "))
	st := end(t, s)
	require.Equal(t, map[string][]byte{"k": []byte("v1")}, st.FilterState)
}

// Route cache clears are counted; custom flags are kept.
func TestHostRouteCacheAndFlags(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{
		"request_headers": []M{{"clear_route_cache": true, "refresh_cluster": true, "flag": "tokens"}},
		"request_body":    []M{{"clear_route_cache": true, "flag": "second"}},
	})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("x"), true))
	st := end(t, s)
	require.Equal(t, 2, st.RouteCacheClears)
	require.Equal(t, 1, st.ClusterCacheClears)
	require.Equal(t, "tokens,second", st.Flags)
}

// Metrics are defined at config time only; wrong tag counts and unknown ids
// are refused; tests read every series back.
func TestHostMetrics(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	defs := h.MustConfigure(harness.Chain{script("a", M{
		"counters":   []M{{"name": "t.c", "labels": []string{"l"}}},
		"gauges":     []M{{"name": "t.g"}},
		"histograms": []M{{"name": "t.h", "labels": []string{"x"}}},
		"request_headers": []M{{"define_late": "t.late", "metric": []M{
			{"kind": "counter", "id": 0, "value": 2, "tags": []string{"v"}},
			{"kind": "counter", "id": 0, "value": 1},
			{"kind": "counter", "id": 5, "value": 1},
			{"kind": "gauge_inc", "id": 0, "value": 5},
			{"kind": "gauge_dec", "id": 0, "value": 2},
			{"kind": "histogram", "id": 0, "value": 7, "tags": []string{"q"}},
			{"kind": "histogram", "id": 0, "value": 9, "tags": []string{"q"}},
		}}},
	})})
	require.Len(t, defs, 3)
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	// MetricsResult: 0 success, 1 not found, 2 invalid labels, 3 frozen.
	require.Equal(t, []string{
		"metric counter 0 result=0", "metric counter 0 result=2", "metric counter 5 result=1",
		"metric gauge_inc 0 result=0", "metric gauge_dec 0 result=0",
		"metric histogram 0 result=0", "metric histogram 0 result=0",
	}, logs(s, "metric "))
	require.Equal(t, []string{"define-late t.late result=3"}, logs(s, "define-late"))
	end(t, s)
	st := h.MustStats()
	v, ok := st.Counter("t.c", "l", "v")
	require.True(t, ok)
	require.EqualValues(t, 2, v)
	g, _ := st.Gauge("t.g")
	require.EqualValues(t, 3, g)
	hist, ok := st.Histogram("t.h", "x", "q")
	require.True(t, ok)
	require.EqualValues(t, 2, hist.Count)
	require.EqualValues(t, 16, hist.Sum)
	require.Equal(t, []uint64{7, 9}, hist.Values)
	require.Nil(t, st.Find("counter", "t.late"))
}

// With trailers, no body frame carries end of stream.
func TestHostTrailersEndTheStream(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{}), script("b", M{})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("x"), false))
	require.NoError(t, s.RequestData([]byte("y"), false))
	require.NoError(t, s.RequestTrailers(harness.Headers{{"t", "1"}}))
	require.Equal(t, []string{"up_headers", "up_data:x", "up_data:y", "up_trailers+eos"}, kinds(s.Events()))
	for _, o := range logs(s, "obs") {
		if strings.Contains(o, "request_body") {
			require.Contains(t, o, "eos=0", o)
		}
	}
	require.Len(t, logs(s, "obs a request_trailers"), 1)
	require.Equal(t, "1", s.Upstream().Trailers.Get("t"))
	end(t, s)
}

// A filter that buffers until end of stream sees the whole body in the
// buffered body whether end of stream rides on the last data frame or comes
// as a separate empty frame (HTTP/1 chunked).
func TestHostBufferingFilterAtEndOfStream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames []string
		want   []string
	}{
		{"eos on last data frame", []string{"p", "q"}, []string{
			`obs a request_body eos=0 recv="p" buf="" rb=0`,
			`obs a request_body eos=1 recv="" buf="pq" rb=0`,
			`obs b request_body eos=1 recv="pq" buf="pq" rb=1`,
		}},
		{"eos on an empty frame", []string{"p", "q", ""}, []string{
			`obs a request_body eos=0 recv="p" buf="" rb=0`,
			`obs a request_body eos=0 recv="q" buf="p" rb=0`,
			`obs a request_body eos=1 recv="" buf="pq" rb=0`,
			`obs b request_body eos=1 recv="pq" buf="pq" rb=1`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := scriptHost(t, harness.Options{})
			h.MustConfigure(harness.Chain{
				script("a", M{"request_headers": []M{{"status": "stop"}}, "request_body": []M{{"status": "buffer", "eos_status": "continue"}}}),
				script("b", M{}),
			})
			s := open(t, h)
			require.NoError(t, s.RequestHeaders(reqHeaders, false))
			for i, f := range tc.frames {
				require.NoError(t, s.RequestData([]byte(f), i == len(tc.frames)-1))
			}
			var body []string
			for _, o := range logs(s, "obs") {
				if strings.Contains(o, "request_body") {
					body = append(body, o)
				}
			}
			require.Equal(t, tc.want, body)
			require.Equal(t, []string{"up_headers", "up_data:pq+eos"}, kinds(s.Events()))
			end(t, s)
		})
	}
}

// The response path buffers and continues the same way, in reverse filter
// order, and the client gets the headers only when the filter continues.
func TestHostResponseBuffering(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{"response_headers": []M{{"status": "stop"}}, "response_body": []M{{"status": "buffer", "eos_status": "continue"}}}),
		script("b", M{}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}}, true))
	require.NoError(t, s.SetUpstream("127.0.0.1:9"))
	require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}}, false))
	require.NoError(t, s.ResponseData([]byte("r1"), false))
	require.Equal(t, []string{"up_headers+eos"}, kinds(s.Events()))
	require.NoError(t, s.ResponseData([]byte("r2"), true))
	require.Equal(t, []string{"up_headers+eos", "down_headers", "down_data:r1r2+eos"}, kinds(s.Events()))
	require.Equal(t, []string{
		`obs b response_headers eos=0 recv="" buf="" rb=0`,
		`obs a response_headers eos=0 recv="" buf="" rb=0`,
		`obs b response_body eos=0 recv="r1" buf="" rb=0`,
		`obs a response_body eos=0 recv="r1" buf="" rb=0`,
		`obs b response_body eos=1 recv="" buf="r1r2" rb=0`,
		`obs a response_body eos=1 recv="" buf="r1r2" rb=0`,
	}, logs(s, "obs")[2:])
	end(t, s)
}

// Attributes come from the request, the served endpoint and the response.
func TestHostAttributes(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"attributes": true}}, "response_headers": []M{{"attributes": true}}})})
	s, err := h.Open(harness.StreamOptions{Protocol: "HTTP/2"})
	require.NoError(t, err)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "POST"}, {":path", "/v1/x?y=1"}, {":authority", "api"},
		{"x-request-id", "rid"}}, true))
	require.NoError(t, s.SetUpstream("127.0.0.1:9"))
	require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}}, true))
	require.Equal(t, []string{
		"attrs request_headers path=/v1/x?y=1/true method=POST/true host=api/true protocol=HTTP/2/true upstream=/false " +
			"url_path=/v1/x/true query=y=1/true request_id=rid/true code=0/false upstream_port=0/false",
		"attrs response_headers path=/v1/x?y=1/true method=POST/true host=api/true protocol=HTTP/2/true upstream=127.0.0.1:9/true " +
			"url_path=/v1/x/true query=y=1/true request_id=rid/true code=200/true upstream_port=9/true",
	}, logs(s, "attrs"))
	end(t, s)
}

// A header-only request a filter gives a body: later filters get headers
// without end of stream, then the body.
func TestHostBodyAddedToHeaderOnlyRequest(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"append": [][2]string{{"buffered", "added"}}}}}), script("b", M{})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}}, true))
	require.Equal(t, []string{
		`obs a request_headers eos=1 recv="" buf="" rb=0`,
		`obs b request_headers eos=0 recv="" buf="" rb=0`,
		`obs b request_body eos=1 recv="added" buf="added" rb=1`,
	}, logs(s, "obs"))
	require.Equal(t, []string{"up_headers", "up_data:added+eos"}, kinds(s.Events()))
	end(t, s)
}

// A scheduled event committed after the filter was destroyed is dropped.
func TestHostScheduledEventAfterDestroyIsDropped(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"status": "stop_all_buffer", "continue_after_ms": 50}}})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	end(t, s)
	require.Eventually(t, func() bool { return h.MustStats().ABI.DroppedScheduledEvents == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, logs(s, "obs a scheduled-continue"))
	// and the host goes on
	s2 := open(t, h)
	require.NoError(t, s2.RequestHeaders(reqHeaders, true))
	end(t, s2)
}

// A filter that streams its request (Continue on every frame) behind a
// route with a retry policy: the router keeps what passed in the stream's
// buffered body (for retries), so at end of stream the dynamic-module wrapper
// moves the last frame into that body (addDecodedData) and the router gets an
// empty last frame. This follows Envoy's source (router decodeData and
// DynamicModuleHttpFilter::decodeData); the real-Envoy e2e suite should
// confirm it. Filters that need the whole request must buffer it
// (StopIterationAndBuffer until end of stream), as the next test shows.
func TestHostRetryBufferTakesStreamingFilterLastFrame(t *testing.T) {
	for _, retries := range []bool{true, false} {
		h := scriptHost(t, harness.Options{NoRetryBuffering: !retries})
		h.MustConfigure(harness.Chain{script("a", M{})})
		s := open(t, h)
		require.NoError(t, s.RequestHeaders(reqHeaders, false))
		require.NoError(t, s.RequestData([]byte("x"), false))
		require.NoError(t, s.RequestData([]byte("y"), true))
		if retries {
			require.Equal(t, []string{"up_headers", "up_data:x", "up_data:+eos"}, kinds(s.Events()))
			require.Equal(t, `obs a request_body eos=1 recv="" buf="xy" rb=0`, logs(s, "obs")[2])
		} else {
			require.Equal(t, []string{"up_headers", "up_data:x", "up_data:y+eos"}, kinds(s.Events()))
		}
		end(t, s)
	}
}

func TestHostBufferingFilterKeepsWholeBodyWithRetryBuffer(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_body": []M{{"status": "buffer", "eos_status": "continue"}}}), script("b", M{})})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	for i, f := range []string{"x", "y", "z"} {
		require.NoError(t, s.RequestData([]byte(f), i == 2))
	}
	require.Equal(t, []string{"up_headers", "up_data:xyz+eos"}, kinds(s.Events()))
	end(t, s)
}

// A callback abihost does not emulate aborts the host, naming itself.
func TestHostUnimplementedCallbackAborts(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"request_headers": []M{{"callout": true}}})})
	s := open(t, h)
	require.Error(t, s.RequestHeaders(reqHeaders, true))
	require.Contains(t, h.Stderr(), "abihost: unimplemented callback envoy_dynamic_module_callback_http_filter_http_callout")
}

// A module that rejects its config: the rejection carries its message.
func TestHostConfigRejectionCarriesModuleMessage(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	_, err := h.Configure(harness.Chain{script("a", M{}), script("b", M{"reject": "bad field wibble"})})
	require.ErrorContains(t, err, "filter b: filter_config rejected by the module")
	require.ErrorContains(t, err, "bad field wibble")
	_, err = h.Configure(harness.Chain{script("a", M{"unknown_key": 1})})
	require.ErrorContains(t, err, "unknown_key")
}

// A filter config's scheduler: commits from a goroutine run on the main
// thread (on_http_filter_config_scheduled).
func TestHostConfigScheduler(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{script("a", M{"config_schedule": true})})
	require.Eventually(t, func() bool {
		for _, l := range h.Logs() {
			if l.Msg == "config-scheduled a" {
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 1, h.MustStats().ABI.Hooks["config_scheduled"])
}

// A filter answering by itself with send_response_headers/_data/_trailers:
// the response goes through every filter's response hooks, its own too.
func TestHostFilterSendsItsOwnResponse(t *testing.T) {
	h := scriptHost(t, harness.Options{})
	h.MustConfigure(harness.Chain{
		script("a", M{}),
		script("b", M{"request_headers": []M{{"status": "stop", "respond": M{"status": "202", "body": "mine", "trailers": [][2]string{{"t", "1"}}}}}}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, true))
	require.Equal(t, []string{"local_reply", "down_headers", "down_data:mine", "down_trailers+eos"}, kinds(s.Events()))
	require.Equal(t, []string{
		`obs a request_headers eos=1 recv="" buf="" rb=0`,
		`obs b request_headers eos=1 recv="" buf="" rb=0`,
		`obs b response_headers eos=0 recv="" buf="" rb=0`,
		`obs a response_headers eos=0 recv="" buf="" rb=0`,
		`obs b response_body eos=0 recv="mine" buf="" rb=0`,
		`obs a response_body eos=0 recv="mine" buf="" rb=0`,
		`obs b response_trailers eos=1 recv="" buf="" rb=0`,
		`obs a response_trailers eos=1 recv="" buf="" rb=0`,
	}, logs(s, "obs"))
	require.Equal(t, 202, s.Client().Status)
	end(t, s)
}

// Append and drain work on the received body (in the body hook) and on the
// buffered body; the next filter and the router see the result.
func TestHostAppendAndDrainBodies(t *testing.T) {
	h := scriptHost(t, harness.Options{NoRetryBuffering: true})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_body": []M{
			{"drain": [][2]any{{"received", 2}}, "append": [][2]string{{"received", "!"}}},
			{"status": "buffer", "append": [][2]string{{"received", "?"}}},
			{"append": [][2]string{{"buffered", "+"}}, "drain": [][2]any{{"buffered", 1}}},
		}}),
		script("b", M{}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("xxhello"), false)) // a: "hello!" goes on
	require.NoError(t, s.RequestData([]byte("one"), false))     // a: "one?" is buffered
	require.NoError(t, s.RequestData([]byte("two"), true))      // a: buffer "one?two" + "+" - 1 byte
	require.Equal(t, []string{
		`obs a request_body eos=0 recv="xxhello" buf="" rb=0`,
		`obs b request_body eos=0 recv="hello!" buf="" rb=0`,
		`obs a request_body eos=0 recv="one" buf="" rb=0`,
		`obs a request_body eos=1 recv="" buf="one?two" rb=0`,
		`obs b request_body eos=1 recv="ne?two+" buf="ne?two+" rb=1`,
	}, logs(s, "obs")[2:])
	require.Equal(t, []string{"up_headers", "up_data:hello!", "up_data:ne?two++eos"}, kinds(s.Events()))
	end(t, s)
}

// Envoy's buffer limit: a filter that buffers past it gets a 413 on the
// request path, a 500 on the response path; a streaming filter does not.
func TestHostBufferLimit(t *testing.T) {
	h := scriptHost(t, harness.Options{BufferLimit: 100})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_body": []M{{"status": "buffer", "eos_status": "continue"}},
			"response_body": []M{{"status": "buffer", "eos_status": "continue"}}}),
		script("b", M{}),
	})
	chunk := []byte(strings.Repeat("x", 60))

	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData(chunk, false))
	require.NoError(t, s.RequestData(chunk, false))
	require.Equal(t, []string{"up_headers", "local_reply", "down_headers", "down_data:Payload Too Large+eos"}, kinds(s.Events()))
	require.Equal(t, "request_payload_too_large", s.Events()[1].Details)
	require.Equal(t, 413, s.Client().Status)
	end(t, s)

	// Response: the headers went to the client already, so a reset.
	s = open(t, h)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}}, true))
	require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}}, false))
	require.NoError(t, s.ResponseData(chunk, false))
	require.NoError(t, s.ResponseData(chunk, false))
	require.Equal(t, []string{"up_headers+eos", "down_headers", "reset"}, kinds(s.Events()))
	end(t, s)

	// Response headers held by the filter: a direct 500.
	h.MustConfigure(harness.Chain{script("a", M{"response_headers": []M{{"status": "stop"}},
		"response_body": []M{{"status": "buffer", "eos_status": "continue"}}}), script("b", M{})})
	s = open(t, h)
	require.NoError(t, s.RequestHeaders(harness.Headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}}, true))
	require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}}, false))
	require.NoError(t, s.ResponseData(chunk, false))
	require.NoError(t, s.ResponseData(chunk, false))
	require.Equal(t, []string{"up_headers+eos", "local_reply", "down_headers", "down_data:Internal Server Error+eos"}, kinds(s.Events()))
	require.Equal(t, 500, s.Client().Status)
	end(t, s)

	// Streaming (no buffering filter) is not limited. (Behind a retry
	// policy it would be, see TestHostRetryBufferTakesStreamingFilterLastFrame:
	// the last frame joins the router's retry buffer.)
	h = scriptHost(t, harness.Options{BufferLimit: 100, NoRetryBuffering: true})
	h.MustConfigure(harness.Chain{script("a", M{})})
	s = open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	for i := 0; i < 5; i++ {
		require.NoError(t, s.RequestData(chunk, i == 4))
	}
	require.True(t, harness.RequestLeft(s.Events()))
	require.False(t, harness.Answered(s.Events()))
	end(t, s)
}

// The route is chosen when the request headers arrive, before the first
// filter runs (Envoy's ActiveStream::decodeHeaders fills the route cache),
// and chosen again, from the headers as filters left them, only after a
// filter clears the route cache. A header a filter removes (or sets)
// without clearing the cache has still decided the route and its cluster.
func TestHostRouteChosenBeforeFirstFilter(t *testing.T) {
	withHeader := append(harness.Headers{{"x-r", "1"}}, reqHeaders...)
	for _, tc := range []struct {
		name        string
		headers     harness.Headers
		step        M
		seenByA     string // after its header edit, before its clear
		wantRoute   string // what filter b sees and the router uses
		wantCluster string
	}{
		{"header removed, cache kept", withHeader, M{"remove": [][2]string{{"req", "x-r"}}}, "r1", "r1", "c1"},
		{"header removed, cache cleared", withHeader, M{"remove": [][2]string{{"req", "x-r"}}, "clear_route_cache": true}, "r1", "r2", "c2"},
		{"header set, cache kept", reqHeaders, M{"set": [][3]string{{"req", "x-r", "1"}}}, "r2", "r2", "c2"},
		{"header set, cache cleared", reqHeaders, M{"set": [][3]string{{"req", "x-r", "1"}}, "clear_route_cache": true}, "r2", "r1", "c1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := scriptHost(t, harness.Options{})
			h.MustConfigureRoutes(harness.Route{Name: "r1", Header: "x-r", Value: "1", Cluster: "c1"},
				harness.Route{Name: "r2", Cluster: "c2"})
			step := M{"route_name": true}
			for k, v := range tc.step {
				step[k] = v
			}
			h.MustConfigure(harness.Chain{
				script("a", M{"request_headers": []M{step}}),
				script("b", M{"request_headers": []M{{"route_name": true}}}),
			})
			s := open(t, h)
			require.NoError(t, s.RequestHeaders(tc.headers, true))
			require.Equal(t, []string{"route " + tc.seenByA + " true", "route " + tc.wantRoute + " true"}, logs(s, "route "))
			ev := s.Events()
			require.Equal(t, []string{"up_headers+eos"}, kinds(ev))
			require.Equal(t, tc.wantRoute, ev[0].Route)
			require.Equal(t, tc.wantCluster, ev[0].Cluster)
			st := end(t, s)
			require.Equal(t, tc.wantRoute, st.Route)
			require.Equal(t, tc.wantCluster, st.Cluster)
		})
	}
}

// A filter appending to a buffered body that does not exist from its
// trailers hook: Envoy's addDecodedData/addEncodedData dispatch the data at
// once to the next filters, as a frame without end of stream, before the
// trailers (FilterManager, "inline dispatch"); no buffered body is made.
func TestHostBodyAddedInTrailersGoesOnFirst(t *testing.T) {
	h := scriptHost(t, harness.Options{NoRetryBuffering: true})
	h.MustConfigure(harness.Chain{
		script("a", M{"request_trailers": []M{{"append": [][2]string{{"buffered", "tail"}}}}}),
		script("b", M{"response_trailers": []M{{"append": [][2]string{{"buffered", "end"}}}}}),
	})
	s := open(t, h)
	require.NoError(t, s.RequestHeaders(reqHeaders, false))
	require.NoError(t, s.RequestData([]byte("x"), false))
	require.NoError(t, s.RequestTrailers(harness.Headers{{"t", "1"}}))
	require.Equal(t, []string{"up_headers", "up_data:x", "up_data:tail", "up_trailers+eos"}, kinds(s.Events()))
	require.Contains(t, logs(s, "obs b request_body"), `obs b request_body eos=0 recv="tail" buf="" rb=0`)
	require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}}, false))
	require.NoError(t, s.ResponseData([]byte("y"), false))
	require.NoError(t, s.ResponseTrailers(harness.Headers{{"t", "2"}}))
	require.Equal(t, []string{"down_headers", "down_data:y", "down_data:end", "down_trailers+eos"}, kinds(s.Events())[4:])
	require.Contains(t, logs(s, "obs a response_body"), `obs a response_body eos=0 recv="end" buf="" rb=0`)
	end(t, s)
}
