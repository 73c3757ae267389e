package test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// BenchmarkABIRoundTrip replays a 4 KiB chat request and a non-streamed JSON
// response with usage through envoy.yaml's chain (ai_router, then
// endpoint_picker) inside abihost's own process (abihost --bench: stream
// creation, every request and response hook, stream_complete and destroy,
// no IPC in the loop) and reports the cost per exchange: ns/req and the ABI
// crossings (hooks plus callbacks) per exchange. cpu-ns/req is the worker
// thread's CPU time per exchange (steadier than wall time on a shared
// machine); proc-cpu-ns/req adds the process's other threads (Go GC, the
// module's goroutines). ns/op is set to ns/req so
// that benchstat compares the same figure. host-ns/req is abihost's own part
// of ns/req (the same exchange through modules whose hooks do nothing).
//
//	go test ./test -run '^$' -bench ABIRoundTrip -count 6
func BenchmarkABIRoundTrip(b *testing.B) {
	n := b.N
	if n < 2000 {
		n = 2000
	}
	// The picker scores 10 endpoints with live metrics (the vLLM fixture),
	// as in production; every exchange must leave with a destination.
	chain := harness.EnvoyChain(b).WithJSON("endpoint_picker", pickerConfig(metricsEndpoints(b, 10), nil))
	r, err := harness.RunBench(b, harness.BenchOptions{N: n, Warmup: 500, Chain: chain, Settle: 500 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if r.UpstreamOK != r.N || r.Routed != r.N {
		b.Fatalf("%d of %d exchanges reached the upstream and the client, %d with a destination (local replies %d, incomplete %d)",
			r.UpstreamOK, r.N, r.Routed, r.LocalReplies, r.Incomplete)
	}
	// The host's own floor: the same exchange through do-nothing modules.
	floor, err := harness.RunBench(b, harness.BenchOptions{N: n, Warmup: 500, Lib: harness.EnsureBuilt(b).NullLib})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("per exchange: hooks %v callbacks %v", r.Hooks, r.Callbacks)
	b.ReportMetric(r.NsPerReq, "ns/op")
	b.ReportMetric(floor.NsPerReq, "host-ns/req")
	b.ReportMetric(r.NsPerReq, "ns/req")
	b.ReportMetric(r.ThreadCPUNsPerReq, "cpu-ns/req")
	b.ReportMetric(r.ProcessCPUNsPerReq, "proc-cpu-ns/req")
	b.ReportMetric(r.ABICallsPerReq, "abicalls/req")
	b.ReportMetric(r.HooksPerReq, "hooks/req")
	b.ReportMetric(r.CallbacksPerReq, "callbacks/req")
}

// metricsEndpoints are n local servers answering /metrics with the vLLM
// fixture, for the picker to scrape.
func metricsEndpoints(tb testing.TB, n int) []string {
	expo, err := os.ReadFile("../picker/testdata/vllm_metrics_sim_v0.10.2.txt")
	if err != nil {
		tb.Fatal(err)
	}
	var addrs []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(expo) }))
		tb.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}
