package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// metricsServers serve the vLLM fixture exposition, so the picker has live
// metrics to score.
func metricsServers(tb testing.TB, n int) []string {
	expo, err := os.ReadFile("../picker/testdata/vllm_metrics_sim_v0.10.2.txt")
	require.NoError(tb, err)
	var addrs []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(expo) }))
		tb.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}

var benchResponse = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"sim-model",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":1024,"completion_tokens":9,"total_tokens":1033,"prompt_tokens_details":{"cached_tokens":512}}}`)

func benchRequest(size int) []byte {
	prefix := `{"model":"sim-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"`
	suffix := `"}],"max_tokens":64}`
	return []byte(prefix + strings.Repeat("a", size-len(prefix)-len(suffix)) + suffix)
}

type chain struct {
	router, picker shared.HttpFilterFactory
}

func newChain(tb testing.TB, endpoints []string) chain {
	r, err := (&aiRouterConfigFactory{}).Create(&fakeConfigHandle{}, []byte(`{"costs":[{"metadataKey":"llm_total_token","type":"total"}]}`))
	require.NoError(tb, err)
	quoted := `"` + strings.Join(endpoints, `","`) + `"`
	p, err := (&endpointPickerConfigFactory{}).Create(&fakeConfigHandle{},
		[]byte(`{"pools":[{"name":"pool","endpoints":{"static":[`+quoted+`]},"scrape":{"interval":"1s"}}]}`))
	require.NoError(tb, err)
	tb.Cleanup(func() { r.OnDestroy(); p.OnDestroy() })
	return chain{router: r, picker: p}
}

// exchange runs one request and response through both filters the way
// Envoy orders the hooks, and returns the destination the picker chose.
func (c chain) exchange(s *fakeStream, req, resp []byte) string {
	return c.exchangeFrames(s, req, resp, 0)
}

// exchangeFrames is exchange with the request body arriving in frames of
// at most frame bytes (0: one frame): Envoy moves each frame the router
// stops into the stream's buffered body, whose slices the router then
// reads with the last frame. The fake's own state is reused, so that the
// allocations a benchmark reports are the filters'.
func (c chain) exchangeFrames(s *fakeStream, req, resp []byte, frame int) string {
	s.reset()
	if s.clLen != len(req) || s.clText == "" {
		s.clLen, s.clText = len(req), strconv.Itoa(len(req))
	}
	s.reqHeaders.kv = append(s.reqHeaders.kv, [2]string{":method", "POST"}, [2]string{":path", "/v1/chat/completions"},
		[2]string{"content-type", "application/json"}, [2]string{"content-length", s.clText})
	router, picker := c.router.Create(s), c.picker.Create(s)
	router.OnRequestHeaders(&s.reqHeaders, false)
	rest := req
	s.buffered.split = frame
	for frame > 0 && len(rest) > frame {
		s.frame.b = rest[:frame]
		router.OnRequestBody(&s.frame, false) // StopAndBuffer
		s.buffered.b = append(s.buffered.b, rest[:frame]...)
		rest = rest[frame:]
	}
	s.frame.b = rest
	router.OnRequestBody(&s.frame, true)
	picker.OnRequestHeaders(&s.reqHeaders, false)
	s.frame.b = req
	picker.OnRequestBody(&s.frame, true)
	dest := s.reqHeaders.GetOne(headerDestination).ToUnsafeString() // the fake's own copy
	s.respHeaders.kv = append(s.respHeaders.kv, [2]string{":status", "200"}, [2]string{"content-type", "application/json"})
	picker.OnResponseHeaders(&s.respHeaders, false)
	router.OnResponseHeaders(&s.respHeaders, false)
	s.frame.b = resp
	picker.OnResponseBody(&s.frame, true)
	router.OnResponseBody(&s.frame, true)
	picker.OnStreamComplete()
	router.OnStreamComplete()
	picker.OnDestroy()
	router.OnDestroy()
	return dest
}

func newFakeStream() *fakeStream {
	return &fakeStream{data: map[string]any{}, metadata: map[string]any{}, filterState: map[string][]byte{}, upstream: ""}
}

// BenchmarkFilters is both filters' Go code for one exchange (4 KiB chat
// request, JSON response with usage, 10 endpoints with live metrics),
// without the C ABI: BenchmarkABIRoundTrip in test/ adds the crossings.
// For a CPU profile:
//
//	go test ./module -run '^$' -bench Filters -cpuprofile /tmp/cpu.out
func BenchmarkFilters(b *testing.B) {
	c := newChain(b, metricsServers(b, 10))
	s := newFakeStream()
	req := benchRequest(4 << 10)
	deadline := time.Now().Add(5 * time.Second)
	for c.exchange(s, req, benchResponse) == "" {
		require.True(b, time.Now().Before(deadline), "the picker never had metrics")
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(benchResponse)))
	cpu := startThreadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if c.exchange(s, req, benchResponse) == "" {
			b.Fatal("no destination")
		}
	}
	cpu.report(b)
}

// threadCPU measures the benchmark goroutine's thread CPU time (locked to
// its thread), steadier than wall time on a shared machine: cpu-ns/op.
type threadCPU struct{ start time.Duration }

// rusageThread is Linux's RUSAGE_THREAD.
const rusageThread = 1

func startThreadCPU() threadCPU {
	runtime.LockOSThread()
	return threadCPU{start: threadCPUTime()}
}

func (c threadCPU) report(b *testing.B) {
	b.ReportMetric(float64(threadCPUTime()-c.start)/float64(b.N), "cpu-ns/op")
	runtime.UnlockOSThread()
}

func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFiltersBody is BenchmarkFilters with larger requests in 16 KiB
// frames (Envoy's read size), to show the cost per KiB of the request path
// (copying the body out of Envoy's slices, parsing, prefix hashing).
//
//	go test ./module -run '^$' -bench FiltersBody
func BenchmarkFiltersBody(b *testing.B) {
	c := newChain(b, metricsServers(b, 10))
	s := newFakeStream()
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		req := benchRequest(size)
		b.Run("body="+sizeName(size), func(b *testing.B) {
			deadline := time.Now().Add(5 * time.Second)
			for c.exchangeFrames(s, req, benchResponse, 16<<10) == "" {
				require.True(b, time.Now().Before(deadline), "the picker never had metrics")
				time.Sleep(10 * time.Millisecond)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(req)))
			cpu := startThreadCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if c.exchangeFrames(s, req, benchResponse, 16<<10) == "" {
					b.Fatal("no destination")
				}
			}
			cpu.report(b)
		})
	}
}

// sizeName is n in KiB or MiB ("64KiB", "1MiB").
func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

func TestFakeExchange(t *testing.T) {
	c := newChain(t, metricsServers(t, 3))
	s := newFakeStream()
	req := benchRequest(4 << 10)
	deadline := time.Now().Add(5 * time.Second)
	// The first scrapes land one by one, and an endpoint without metrics is
	// not a candidate yet: wait until all three are in the list.
	var dest string
	for dest = c.exchange(s, req, benchResponse); strings.Count(dest, ",") < 2; dest = c.exchange(s, req, benchResponse) {
		require.True(t, time.Now().Before(deadline), "destination list never had 3 endpoints: %q", dest)
		time.Sleep(10 * time.Millisecond)
	}
	require.Len(t, strings.Split(dest, ","), 3)
	require.Equal(t, "sim-model", s.reqHeaders.GetOne(headerModel).ToString())
	require.EqualValues(t, 1033, s.metadata["io.envoy.ai_gateway/llm_total_token"])
	require.Zero(t, s.replies)
}
