package test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// BenchmarkABIStreamLength is BenchmarkABIRoundTrip's sse=1000 case at
// 100, 1,000 and 10,000 events (4 KiB frames): the cost per exchange should
// grow linearly with the events, the allocations not at all.
//
//	go test ./test -run '^$' -bench ABIStreamLength -count 6
func BenchmarkABIStreamLength(b *testing.B) {
	endpoints := metricsEndpoints(b, 10)
	chain := harness.EnvoyChain(b).WithJSON("endpoint_picker", pickerConfig(endpoints, nil))
	for _, events := range []int{100, 1000, 10000} {
		b.Run("events="+strconv.Itoa(events), func(b *testing.B) {
			n := max(b.N, 2000*1000/events)
			o := harness.BenchOptions{Request: benchRequest(streamedChatBody(4096), 0), Response: sseAnswer(events, 4<<10),
				N: n, Warmup: 500 * 1000 / events, Chain: chain, Settle: 500 * time.Millisecond}
			r, err := harness.RunBench(b, o)
			if err != nil {
				b.Fatal(err)
			}
			if r.UpstreamOK != r.N || r.Routed != r.N || r.ClientBytes < float64(200*events) {
				b.Fatalf("%d of %d exchanges reached the upstream and the client, %d with a destination, %.0f bytes each to the client",
					r.UpstreamOK, r.N, r.Routed, r.ClientBytes)
			}
			b.ReportMetric(r.NsPerReq, "ns/op")
			b.ReportMetric(r.ThreadCPUNsPerReq, "cpu-ns/req")
			b.ReportMetric(r.ProcessCPUNsPerReq, "proc-cpu-ns/req")
			if r.GoAllocsPerReq >= 0 {
				b.ReportMetric(r.GoAllocsPerReq, "go-allocs/req")
			}
			b.ReportMetric(r.HooksPerReq, "hooks/req")
		})
	}
}

// A streamed answer costs the module no Go allocation per body frame: the
// response body hooks read Envoy's chunks into a buffer the filter reuses
// (abi.BodyChunks, where the SDK's GetChunks makes two slices a call) and
// the meter reads events in place. 10,000 events come in 513 frames of
// 4 KiB, 100 events in 6: the allocations per exchange must be about the
// same (the scrapes of the picker's endpoints add a little noise).
func TestStreamedAnswerAllocatesNothingPerFrame(t *testing.T) {
	endpoints := metricsEndpoints(t, 2)
	chain := harness.EnvoyChain(t).WithJSON("endpoint_picker", pickerConfig(endpoints, nil))
	allocs := func(events, n int) float64 {
		answer := sseAnswer(events, 4<<10)
		r, err := harness.RunBench(t, harness.BenchOptions{Request: benchRequest(streamedChatBody(4096), 0),
			Response: answer, N: n, Warmup: n / 4, Chain: chain, Settle: 200 * time.Millisecond,
			Env: []string{directOn}}) // abi.BodyChunks's direct path, even in a run of the suite forced onto the SDK
		require.NoError(t, err)
		require.Equal(t, r.N, r.UpstreamOK)
		require.GreaterOrEqual(t, r.ClientBytes, float64(200*events))
		require.Equal(t, float64(2*len(answer.Frames)), r.Hooks["response_body"], "the frames both filters see")
		require.GreaterOrEqual(t, r.GoAllocsPerReq, 0.0, "the library counts its allocations")
		return r.GoAllocsPerReq
	}
	few, many := allocs(100, 1000), allocs(10000, 100)
	require.Less(t, many-few, 20.0, "Go allocations per exchange: %.1f with 100 events, %.1f with 10,000", few, many)
}
