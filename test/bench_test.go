package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// BenchmarkABIRoundTrip replays one recorded exchange through envoy.yaml's
// chain (ai_router, then endpoint_picker, the picker scoring 10 endpoints
// with live metrics) inside abihost's own process (abihost --bench: stream
// creation, every request and response hook, stream_complete and destroy,
// no IPC in the loop) and reports the cost per exchange. The cases:
//
//   - body=4KiB: a 4 KiB chat request in one frame, a JSON answer with usage
//     (the headline figure, comparable with earlier runs of this benchmark
//     before it had sub-benchmarks);
//   - body=1MiB: a 1 MiB chat request in 16 KiB frames (Envoy's read size),
//     the same answer; Envoy's buffer limit is envoy.yaml's 8 MiB;
//   - sse=1000: a 4 KiB streamed request (stream_options.include_usage) and
//     a 1,000-event answer with usage in the last chunk, in 4 KiB frames (as
//     transform's BenchmarkSSEUsage);
//   - body=256KiB, sse=250: the same at a quarter of the size: the cost
//     of the last 768 KiB or 750 events, divided, against the first's, says
//     whether the path is linear in size;
//   - onefilter=4KiB: body=4KiB through ai_router alone, picking too (its
//     endpointPicker): the same work in one filter's hooks;
//   - upstream=openai: body=4KiB routed to a cluster of the 10 endpoints
//     whose upstream chain has ai_upstream with an OpenAI-compatible backend
//     (API key from a file): one upstream attempt per exchange, whose filter
//     sees the request before the codec and the answer before the router;
//   - upstream=anthropic, upstream=gemini, upstream=bedrock: the same with
//     a backend of that provider (Bedrock's requests SigV4-signed), whose
//     JSON answer with usage is translated back.
//
// Metrics: ns/req (wall; ns/op is set to it so benchstat compares the same
// figure), cpu-ns/req (the worker thread's CPU, steadier on a shared
// machine), proc-cpu-ns/req (all the process's threads: Go GC, the module's
// goroutines), host-ns/req (abihost's own part: the same exchange through
// C modules whose hooks do nothing), sdk-floor-ns/req (the same through
// do-nothing filters built with the Go SDK, test/abihost/gonull: the host
// plus the SDK's filter creation and its entry into Go for every hook),
// go-allocs/req (the Go heap allocations of the process per exchange, SDK and background scrapes included, read
// through the library's inferencepool_heap_allocs export) and the ABI
// crossings per exchange. With ABIHOST_CALLGRIND=1 every run goes through
// valgrind's callgrind and adds instr/req (also host- and sdk-floor-):
// the instructions the worker thread executed per measured exchange, which
// repeat to 0.1% on a machine whose times move by a third (use
// -benchtime 2000x: callgrind runs about fifty times slower); with
// ABIHOST_CALLGRIND_KEEP=dir the profiles stay there for callgrind_annotate.
//
//	go test ./test -run '^$' -bench ABIRoundTrip -count 6
//	ABIHOST_CALLGRIND=1 go test ./test -run '^$' -bench 'ABIRoundTrip/body=4KiB$' -benchtime 2000x
func BenchmarkABIRoundTrip(b *testing.B) {
	endpoints := metricsEndpoints(b, 10)
	chain := harness.EnvoyChain(b).WithJSON("endpoint_picker", pickerConfig(endpoints, nil))
	// body=4KiB with ai_router picking too (its endpointPicker): one filter.
	oneFilter := harness.EnvoyChain(b).Only("ai_router").WithMerged("ai_router", map[string]any{"endpointPicker": pickerConfig(endpoints, nil)})
	goNull, err := harness.BuildModule(b, "./test/abihost/gonull", "dist/libabihostgonull.so")
	if err != nil {
		b.Fatal(err)
	}
	answer := harness.ChatResponseWithUsage()
	cases := []struct {
		name     string
		opts     harness.BenchOptions
		minBytes int // what the client must get back, at least
	}{
		{name: "body=4KiB", opts: harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: answer}},
		{name: "body=1MiB", opts: harness.BenchOptions{Request: benchRequest(harness.ChatBody("sim-model", 1<<20), 16<<10),
			Response: answer, BufferLimit: 8 << 20}},
		{name: "sse=1000", opts: harness.BenchOptions{Request: benchRequest(streamedChatBody(4096), 0),
			Response: sseAnswer(1000, 4<<10)}, minBytes: 200_000},
		// A quarter of the two above: with them, the cost per KiB and per
		// event, whose constancy says the path is linear in size.
		{name: "body=256KiB", opts: harness.BenchOptions{Request: benchRequest(harness.ChatBody("sim-model", 256<<10), 16<<10),
			Response: answer, BufferLimit: 8 << 20}},
		{name: "sse=250", opts: harness.BenchOptions{Request: benchRequest(streamedChatBody(4096), 0),
			Response: sseAnswer(250, 4<<10)}, minBytes: 50_000},
		{name: "upstream=openai", opts: harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: answer,
			Clusters: []harness.Cluster{openAICluster(b, endpoints)}, Routes: []harness.Route{{Name: "pool", Cluster: "pool"}}}},
		{name: "upstream=anthropic", opts: harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: jsonAnswer(benchAnthropicAnswer),
			Clusters: []harness.Cluster{providerCluster(b, endpoints, map[string]any{"schema": "anthropic", "apiKeyFile": benchKey(b)})},
			Routes:   []harness.Route{{Name: "pool", Cluster: "pool"}}}},
		{name: "upstream=gemini", opts: harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: jsonAnswer(benchGeminiAnswer),
			Clusters: []harness.Cluster{providerCluster(b, endpoints, map[string]any{"schema": "gemini", "apiKeyFile": benchKey(b)})},
			Routes:   []harness.Route{{Name: "pool", Cluster: "pool"}}}},
		{name: "upstream=bedrock", opts: harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: jsonAnswer(fakeprovider.ConverseAnswer),
			Clusters: []harness.Cluster{providerCluster(b, endpoints, map[string]any{"schema": "aws_bedrock", "region": "us-east-1",
				"credentialsFile": fakeprovider.BedrockCredentialsFile(b)})},
			Routes: []harness.Route{{Name: "pool", Cluster: "pool"}}}},
		{name: "onefilter=4KiB", opts: harness.BenchOptions{Request: harness.ChatRequest4KiB(), Response: answer, Chain: oneFilter}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			n := b.N
			if n < 2000 {
				n = 2000
			}
			o := c.opts
			o.N, o.Warmup, o.Settle = n, 500, 500*time.Millisecond
			if o.Chain == nil {
				o.Chain = chain
			}
			r, err := harness.RunBench(b, o)
			if err != nil {
				b.Fatal(err)
			}
			if r.UpstreamOK != r.N || r.Routed != r.N || r.ClientBytes < float64(c.minBytes) {
				b.Fatalf("%d of %d exchanges reached the upstream and the client, %d with a destination, %.0f bytes each to the client (local replies %d, incomplete %d)",
					r.UpstreamOK, r.N, r.Routed, r.ClientBytes, r.LocalReplies, r.Incomplete)
			}
			// The host's own floor: the same exchange through do-nothing modules.
			f := c.opts
			f.N, f.Warmup, f.Lib = n, 500, harness.EnsureBuilt(b).NullLib
			floor, err := harness.RunBench(b, f)
			if err != nil {
				b.Fatal(err)
			}
			// The Go SDK's floor: do-nothing filters built with the SDK (its
			// filter creation and each hook's entry into Go).
			f.Lib = goNull
			sdkFloor, err := harness.RunBench(b, f)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("per exchange: hooks %v callbacks %v", r.Hooks, r.Callbacks)
			b.ReportMetric(r.NsPerReq, "ns/op")
			b.ReportMetric(floor.NsPerReq, "host-ns/req")
			b.ReportMetric(sdkFloor.NsPerReq, "sdk-floor-ns/req")
			b.ReportMetric(r.NsPerReq, "ns/req")
			b.ReportMetric(r.ThreadCPUNsPerReq, "cpu-ns/req")
			b.ReportMetric(r.ProcessCPUNsPerReq, "proc-cpu-ns/req")
			if r.GoAllocsPerReq >= 0 {
				b.ReportMetric(r.GoAllocsPerReq, "go-allocs/req")
			}
			if r.InstrPerReq > 0 {
				b.ReportMetric(r.InstrPerReq, "instr/req")
				b.ReportMetric(floor.InstrPerReq, "host-instr/req")
				b.ReportMetric(sdkFloor.InstrPerReq, "sdk-floor-instr/req")
			}
			if r.GoCCallsPerReq >= 0 {
				b.ReportMetric(r.GoCCallsPerReq, "go-c-calls/req")
			}
			b.ReportMetric(r.ABICallsPerReq, "abicalls/req")
			b.ReportMetric(r.HooksPerReq, "hooks/req")
			b.ReportMetric(r.CallbacksPerReq, "callbacks/req")
		})
	}
}

// benchRequest is body as a client sends it, in frames of at most frame
// bytes (0: one frame), with ChatRequest4KiB's headers.
func benchRequest(body []byte, frame int) harness.Recorded {
	r := harness.ChatRequest4KiB()
	for i, kv := range r.Headers {
		if kv[0] == "content-length" {
			r.Headers[i][1] = strconv.Itoa(len(body))
		}
	}
	r.Frames = chunks(body, frame)
	return r
}

func chunks(b []byte, size int) [][]byte {
	if size <= 0 {
		return [][]byte{b}
	}
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

// streamedChatBody is a chat request of about size bytes asking for a
// streamed answer with usage.
func streamedChatBody(size int) []byte {
	b := harness.ChatBody("sim-model", size)
	return append([]byte(`{"stream":true,"stream_options":{"include_usage":true},`), b[1:]...)
}

// sseAnswer is a streamed chat answer of n events (n-2 content chunks, the
// usage chunk, [DONE]) in frames of frame bytes, as llm-d-inference-sim
// sends it.
func sseAnswer(n, frame int) harness.Recorded {
	var b bytes.Buffer
	for i := range n - 2 {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-5fbbd30b-162d-50f5-b8f2-f2d1f4c11ec4","model":"sim-model","object":"chat.completion.chunk","created":1795669832,"choices":[{"index":0,"finish_reason":null,"delta":{"content":"tok%d "}}]}`+"\n\n", i)
	}
	fmt.Fprintf(&b, `data: {"id":"chatcmpl-5fbbd30b-162d-50f5-b8f2-f2d1f4c11ec4","model":"sim-model","object":"chat.completion.chunk","created":1795669832,"usage":{"prompt_tokens":812,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0}},"choices":[]}`+"\n\n", n-2, n+810)
	b.WriteString("data: [DONE]\n\n")
	return harness.Recorded{
		Headers: harness.Headers{{":status", "200"}, {"content-type", "text/event-stream; charset=utf-8"},
			{"date", "Thu, 26 Nov 2026 05:23:26 GMT"}, {"server", "fasthttp"}},
		Frames: chunks(b.Bytes(), frame),
	}
}

// openAICluster is a cluster of the endpoints whose upstream chain has
// ai_upstream with one OpenAI-compatible backend and its API key in a file.
func openAICluster(tb testing.TB, endpoints []string) harness.Cluster {
	return providerCluster(tb, endpoints, map[string]any{"schema": "openai", "apiKeyFile": benchKey(tb)})
}

// benchKey is a file holding an API key.
func benchKey(tb testing.TB) string {
	key := filepath.Join(tb.TempDir(), "key")
	if err := os.WriteFile(key, []byte("sk-bench-0123456789\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return key
}

// Provider answers for the upstream=... cases: a JSON answer with usage.
const (
	benchAnthropicAnswer = `{"id":"msg_01","type":"message","role":"assistant","model":"sim-model","content":[{"type":"text",` +
		`"text":"Testing@, #testing 1$ ,2%,3^, [4&*5], 6~, 7-_ + (8 : 9) / \\ < > ."}],"stop_reason":"end_turn","stop_sequence":null,` +
		`"usage":{"input_tokens":812,"output_tokens":29}}`
	benchGeminiAnswer = `{"candidates":[{"content":{"role":"model","parts":[{"text":"Testing@, #testing 1$ ,2%,3^, [4&*5], 6~, 7-_ + (8 : 9) / \\ < > ."}]},` +
		`"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":812,"candidatesTokenCount":29,"totalTokenCount":841},` +
		`"modelVersion":"sim-model","responseId":"r1"}`
)

// jsonAnswer is a 200 JSON answer of body.
func jsonAnswer(body string) harness.Recorded {
	return harness.Recorded{
		Headers: harness.Headers{{":status", "200"}, {"content-type", "application/json"}, {"content-length", strconv.Itoa(len(body))}},
		Frames:  [][]byte{[]byte(body)},
	}
}

// providerCluster is the cluster "pool" of endpoints with ai_upstream and
// one backend, named pool, of the given config.
func providerCluster(tb testing.TB, endpoints []string, backend map[string]any) harness.Cluster {
	backend["name"] = "pool"
	cfg, err := json.Marshal(map[string]any{"backends": []map[string]any{backend}})
	if err != nil {
		tb.Fatal(err)
	}
	c := harness.Cluster{Name: "pool", Filters: harness.Chain{{Name: "ai_upstream", Config: cfg}}}
	for _, e := range endpoints {
		c.Hosts = append(c.Hosts, harness.UpstreamHost{Address: e})
	}
	return c
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
