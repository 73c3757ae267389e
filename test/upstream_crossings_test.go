package test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// Each header edit is a crossing into Envoy. Through the ABI host, the
// 4 KiB exchange with one ai_upstream attempt to an OpenAI-compatible
// backend sets headers three times: ai_router's model header,
// endpoint_picker's destination, and ai_upstream's authorization (the
// client's differs). The translation's other edits (:path, content-length
// and content-type as the client sent them, the provider headers the
// client did not send) change nothing and stay on this side; the client's
// headers still reach the backend as TestUpstreamOpenAICompatible checks.
// The ABI host counts its callbacks; the headers are read in one call
// where a hook needs several (ai_router's request, ai_upstream's request
// and response).
//
// ai_upstream's callbacks cross from Go in five calls per attempt
// (abi.Batch): in the request headers hook the headers, the host's backend
// name and the original request, then the metadata and filter state
// writes; in the request body hook the body, then the header edit; in the
// response headers hook the headers. The answer passes unread. The
// downstream filters' calls are those of the same exchange without the
// upstream filter. (A filter new from its pool reads its first headers in
// one more call: its room for them grows once.)
func TestUpstreamEditsCrossOnlyWhenTheyChange(t *testing.T) {
	endpoints := metricsEndpoints(t, 2)
	chain := harness.EnvoyChain(t).WithJSON("endpoint_picker", pickerConfig(endpoints, nil))
	opts := harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: harness.ChatResponseWithUsage(),
		N: 50, Warmup: 10, Chain: chain, Settle: 100 * time.Millisecond, Env: []string{directOn}} // direct even in a suite run through the SDK
	downstream, err := harness.RunBench(t, opts)
	require.NoError(t, err)
	opts.Clusters, opts.Routes = []harness.Cluster{openAICluster(t, endpoints)}, []harness.Route{{Name: "pool", Cluster: "pool"}}
	r, err := harness.RunBench(t, opts)
	require.NoError(t, err)
	require.Equal(t, r.N, r.UpstreamOK, "every exchange reached the upstream (local replies %d)", r.LocalReplies)
	require.InDelta(t, 5, r.GoCCallsPerReq-downstream.GoCCallsPerReq, 0.2, "ai_upstream's calls from Go per attempt (%v with it, %v without)",
		r.GoCCallsPerReq, downstream.GoCCallsPerReq)
	require.EqualValues(t, 3, r.Callbacks["http_set_header"], "header edits per exchange: %v", r.Callbacks)
	require.EqualValues(t, 3, r.Callbacks["http_get_headers"], "whole-map reads per exchange: %v", r.Callbacks)
	// The body's slices: ai_router's request and response, ai_upstream's
	// request; the answer, already OpenAI's, passes ai_upstream unread.
	require.EqualValues(t, 3, r.Callbacks["http_get_body_chunks"], "body reads per exchange: %v", r.Callbacks)
}
