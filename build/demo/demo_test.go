package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// front serves HTTP by passing each request through the real library in
// abihost, which forwards it to the endpoint the picker chose, and adds the
// endpoint header the make-run bootstrap's route adds
// (%UPSTREAM_REMOTE_ADDRESS%). Responses are written whole, once the
// exchange is done: enough for the SDK, not for timing.
type front struct {
	h       *harness.Host
	cluster []string
	mu      sync.Mutex
	served  []served
}

type served struct{ endpoint, destination string }

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var hdrs harness.Headers
	for k, vs := range r.Header {
		for _, v := range vs {
			hdrs = append(hdrs, [2]string{strings.ToLower(k), v})
		}
	}
	res, err := f.h.Send(r.Context(), &harness.Request{Method: r.Method, Path: r.URL.RequestURI(), Headers: hdrs, Body: body, Cluster: f.cluster})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	dest := ""
	if res.Upstream != nil {
		dest = res.Upstream.Headers.Get("x-gateway-destination-endpoint")
	}
	f.mu.Lock()
	f.served = append(f.served, served{res.Endpoint, dest})
	f.mu.Unlock()
	for _, kv := range res.Client.Headers {
		if !strings.HasPrefix(kv[0], ":") && kv[0] != "content-length" && kv[0] != "transfer-encoding" {
			w.Header().Add(kv[0], kv[1])
		}
	}
	if res.Endpoint != "" {
		w.Header().Set(EndpointHeader, res.Endpoint)
	}
	w.WriteHeader(res.Client.Status)
	_, _ = w.Write(res.Client.Body)
}

// The demo through the real library (abihost) and simulated vLLM servers:
// each answer names the endpoint the picker chose, its tokens are the ones
// ai_router metered into gen_ai.client.token.usage, and streams have a time
// to first token.
func TestDemoThroughTheLibrary(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 3, Args: []string{
		"--max-loras", "2", "--lora-modules", `{"name":"sim-lora","path":"/adapters/sim-lora"}`,
		"--time-to-first-token", "20ms", "--inter-token-latency", "2ms"}})
	// The library make build ships, as make run loads it.
	h := harness.Start(t, harness.Options{Lib: harness.ProductionLib(t)})
	h.MustConfigure(harness.EnvoyChain(t).WithJSON("endpoint_picker", map[string]any{"pools": []any{map[string]any{
		"name": "pool", "endpoints": map[string]any{"static": sim.Addrs}}}}))
	// Until its first scrapes land the picker names no endpoint (fail-open:
	// Envoy's own balancing serves), and the demo would show no choice.
	require.Eventually(t, func() bool {
		res, err := h.Send(context.Background(), &harness.Request{Headers: harness.Headers{{"content-type", "application/json"}},
			Body: []byte(`{"model":"sim-model","max_tokens":1,"messages":[{"role":"user","content":"warm up"}]}`), Cluster: sim.Addrs})
		return err == nil && res.Upstream != nil && res.Upstream.Headers.Get("x-gateway-destination-endpoint") != ""
	}, 15*time.Second, 50*time.Millisecond, "the picker never named an endpoint")
	warmPicks, _ := h.MustStats().Counter("endpoint_picker.picks", "pool", "pool")
	warmTokens := meteredTokens(h)
	f := &front{h: h, cluster: sim.Addrs}
	srv := httptest.NewServer(f)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results := Run(ctx, srv.URL+"/v1", Calls([]string{"sim-model", "sim-lora"}))
	require.Len(t, results, 4)
	var prompt, completion int64
	for i, r := range results {
		require.NoError(t, r.Err, "call %d (%s, stream %v)", i, r.Model, r.Stream)
		require.Contains(t, sim.Addrs, r.Endpoint)
		// The endpoint shown is the picker's first choice (no retries here).
		require.Equal(t, r.Endpoint, f.served[i].endpoint)
		require.Equal(t, r.Endpoint, strings.Split(f.served[i].destination, ",")[0])
		require.Positive(t, r.PromptTokens)
		require.Positive(t, r.CompletionTokens)
		require.NotEmpty(t, r.Text)
		require.Positive(t, r.TTFT)
		require.LessOrEqual(t, r.TTFT, r.Total)
		prompt += r.PromptTokens
		completion += r.CompletionTokens
	}
	require.Equal(t, []bool{false, true, false, true}, []bool{results[0].Stream, results[1].Stream, results[2].Stream, results[3].Stream})

	// What the client counted is what the library metered.
	metered := meteredTokens(h)
	require.EqualValues(t, prompt, metered["input"]-warmTokens["input"])
	require.EqualValues(t, completion, metered["output"]-warmTokens["output"])
	picks, _ := h.MustStats().Counter("endpoint_picker.picks", "pool", "pool")
	require.EqualValues(t, 4, picks-warmPicks, "one pick per demo call")

	var out bytes.Buffer
	require.Zero(t, Print(&out, srv.URL+"/v1", "http://127.0.0.1:9901", results))
	for _, r := range results {
		require.Contains(t, out.String(), r.Endpoint)
	}
	require.Contains(t, out.String(), "Where to look next")
	require.Contains(t, out.String(), "build/grafana/inferencepool.json")
	t.Logf("\n%s", out.String())
}

// What the demo reads from answers it did not expect: no endpoint header
// (the simulator's own headers, else "?"), no usage, no content, an error.
func TestDemoParsesAnswers(t *testing.T) {
	plain := func(usage string) string {
		return `{"id":"1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}]` + usage + `}`
	}
	chunk := func(content string) string {
		return `data: {"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}` + "\n\n"
	}
	usageChunk := `data: {"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}` + "\n\n"
	for _, tc := range []struct {
		name         string
		stream       bool
		headers      map[string]string
		status       int
		body         string
		wantEndpoint string
		wantErr      string
		wantTokens   [2]int64
	}{
		{"plain with the proxy's header", false, map[string]string{EndpointHeader: "10.0.0.1:8000", "x-inference-pod": "p"}, 200,
			plain(`,"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}`), "10.0.0.1:8000", "", [2]int64{5, 2}},
		{"plain, simulator headers only", false, map[string]string{"x-inference-pod": "sim-a", "x-inference-port": "8001"}, 200,
			plain(`,"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}`), "sim-a:8001", "", [2]int64{5, 2}},
		{"plain without usage", false, nil, 200, plain(""), "", "no usage", [2]int64{}},
		{"stream", true, map[string]string{EndpointHeader: "10.0.0.2:8000"}, 200,
			chunk("") + chunk("he") + chunk("llo") + usageChunk + "data: [DONE]\n\n", "10.0.0.2:8000", "", [2]int64{7, 3}},
		{"stream without the usage chunk", true, nil, 200, chunk("x") + "data: [DONE]\n\n", "", "no usage chunk", [2]int64{}},
		{"stream without content", true, nil, 200, chunk("") + usageChunk + "data: [DONE]\n\n", "", "no content", [2]int64{7, 3}},
		{"an OpenAI error", false, map[string]string{EndpointHeader: "10.0.0.3:8000"}, 429,
			`{"error":{"message":"budget spent","type":"rate_limit_error","param":null,"code":"budget_exhausted"}}`, "10.0.0.3:8000", "429 budget_exhausted: budget spent", [2]int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = io.ReadAll(r.Body)
				for k, v := range tc.headers {
					w.Header().Set(k, v)
				}
				if tc.stream {
					w.Header().Set("content-type", "text/event-stream")
				} else {
					w.Header().Set("content-type", "application/json")
				}
				w.WriteHeader(tc.status)
				_, _ = fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			r := Run(context.Background(), srv.URL+"/v1", []Call{{Model: "m", Stream: tc.stream, Prompt: "p"}})[0]
			require.Equal(t, tc.wantEndpoint, r.Endpoint)
			require.Equal(t, tc.wantTokens, [2]int64{r.PromptTokens, r.CompletionTokens})
			if tc.wantErr == "" {
				require.NoError(t, r.Err)
			} else {
				require.ErrorContains(t, r.Err, tc.wantErr)
			}
			if tc.stream {
				require.Contains(t, string(got), `"include_usage":true`)
				require.Contains(t, string(got), `"stream":true`)
				if tc.wantErr == "" {
					require.Equal(t, "hello", r.Text)
				}
			}
			var out bytes.Buffer
			failed := Print(&out, "u", "a", []Result{r})
			require.Equal(t, tc.wantErr != "", failed == 1, out.String())
			if tc.wantEndpoint == "" {
				require.Contains(t, out.String(), " ? ")
			}
		})
	}
}

// meteredTokens sums gen_ai.client.token.usage by token type.
func meteredTokens(h *harness.Host) map[string]uint64 {
	m := map[string]uint64{}
	for _, s := range h.MustStats().Named("gen_ai.client.token.usage") {
		m[s.Tags["gen_ai.token.type"]] += s.Sum
	}
	return m
}
