package test

import (
	"testing"

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
	r, err := harness.RunBench(b, harness.BenchOptions{N: n, Warmup: 500})
	if err != nil {
		b.Fatal(err)
	}
	if r.UpstreamOK != r.N {
		b.Fatalf("%d of %d exchanges reached the upstream and the client (local replies %d, incomplete %d)",
			r.UpstreamOK, r.N, r.LocalReplies, r.Incomplete)
	}
	// The host's own floor: the same exchange through do-nothing modules.
	floor, err := harness.RunBench(b, harness.BenchOptions{N: n, Warmup: 500, Lib: harness.EnsureBuilt(b).NullLib})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.NsPerReq, "ns/op")
	b.ReportMetric(floor.NsPerReq, "host-ns/req")
	b.ReportMetric(r.NsPerReq, "ns/req")
	b.ReportMetric(r.ThreadCPUNsPerReq, "cpu-ns/req")
	b.ReportMetric(r.ProcessCPUNsPerReq, "proc-cpu-ns/req")
	b.ReportMetric(r.ABICallsPerReq, "abicalls/req")
	b.ReportMetric(r.HooksPerReq, "hooks/req")
	b.ReportMetric(r.CallbacksPerReq, "callbacks/req")
}
