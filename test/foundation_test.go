// Package test holds the integration tests that drive libinferencepool.so
// through Envoy's C ABI with abihost (test/abihost) and the harness.
package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

func chatBody(model, prompt string) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":    model,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	})
	return b
}

var jsonCT = harness.Headers{{"content-type", "application/json"}}

// Every callback the library references is defined by abihost, so that none
// resolves to nothing at the first call.
func TestAbihostDefinesEveryCallbackTheLibraryReferences(t *testing.T) {
	b := harness.EnsureBuilt(t)
	undefined := symbols(t, b.Lib, "U")
	defined := map[string]bool{}
	for _, s := range symbols(t, b.Host, "T") {
		defined[s] = true
	}
	n := 0
	for _, s := range undefined {
		if strings.HasPrefix(s, "envoy_dynamic_module_callback_") {
			n++
			require.True(t, defined[s], "abihost does not define %s", s)
		}
	}
	require.Greater(t, n, 60, "the library should reference the SDK's callbacks")
}

func symbols(t *testing.T, path, kind string) []string {
	out, err := exec.Command("nm", "-D", path).Output()
	require.NoError(t, err)
	var syms []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[len(f)-2] == kind {
			syms = append(syms, f[len(f)-1])
		}
	}
	return syms
}

// A chat request goes through ai_router and endpoint_picker (envoy.yaml's
// chain) to a real simulator and its answer comes back unchanged.
func TestRequestThroughBothFiltersReachesSimulator(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 2})
	h := harness.Start(t, harness.Options{})
	metrics := h.MustConfigure(harness.EnvoyChain(t))
	require.NotEmpty(t, metrics)

	body := chatBody(sim.Model, "Hello through the ABI")
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: body, Cluster: sim.Addrs})
	require.NoError(t, err)
	require.Nil(t, res.LocalReply)
	require.Contains(t, sim.Addrs, res.Endpoint)
	require.Equal(t, 200, res.Client.Status)

	// The simulator got the request.
	require.Equal(t, "POST", res.Received.Method)
	require.Equal(t, "/v1/chat/completions", res.Received.Path)
	require.JSONEq(t, string(body), string(res.Received.Body))
	require.NotEmpty(t, res.Received.Headers.Get("X-Request-Id"))

	// The client got exactly the simulator's answer.
	require.Equal(t, res.UpstreamResponse.Body, res.Client.Body)
	var answer struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(res.Client.Body, &answer))
	require.Equal(t, sim.Model, answer.Model)
	require.NotEmpty(t, answer.Choices)
	require.Positive(t, answer.Usage.TotalTokens)

	// Both filters ran every hook and completed.
	require.True(t, res.State.Completed)
	require.Empty(t, res.State.Violations)
	require.GreaterOrEqual(t, res.State.Hooks, 2*6)
	st := h.MustStats()
	for _, f := range []string{"ai_router", "endpoint_picker"} {
		v, ok := st.Counter(f + ".panics")
		require.True(t, ok, "%s.panics is defined at config time", f)
		require.Zero(t, v)
	}
}

// A streamed answer arrives chunk by chunk and ends with the empty frame of
// HTTP/1 chunked encoding.
func TestStreamedAnswerArrivesInChunks(t *testing.T) {
	// Echo mode answers with the prompt's words (a fixed length, where the
	// random mode may answer one token), 30 ms apart: far enough that a busy
	// machine's reader does not take several events in one read.
	sim := harness.StartSim(t, harness.SimOptions{Args: []string{"--mode", "echo", "--inter-token-latency", "30ms"}})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t))
	body, _ := json.Marshal(map[string]any{"model": sim.Model, "stream": true, "max_tokens": 20,
		"messages": []map[string]string{{"role": "user", "content": "stream please, one word at a time"}}})
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: body, Cluster: sim.Addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status)
	require.Equal(t, res.UpstreamResponse.Body, res.Client.Body)
	t.Logf("%d frames, %d events", len(res.Client.Chunks), strings.Count(string(res.Client.Body), "data: "))
	require.Greater(t, len(res.Client.Chunks), 2, "the SSE stream should arrive in several frames")
	require.True(t, res.Client.EOSFrame, "chunked: end of stream comes as a separate empty frame")
	require.Contains(t, string(res.Client.Body), "data: [DONE]")
}

// A panic in a request hook becomes a 500 with an OpenAI-style error body,
// <filter>.panics counts it, and the host keeps serving.
func TestPanicInHookIsContained(t *testing.T) {
	upstream := echoUpstream(t)
	for _, tc := range []struct {
		filter, hook string
		want500      bool
	}{
		{"ai_router", "request_headers", true},
		{"endpoint_picker", "request_body", true},
		{"ai_router", "response_headers", false},
		{"endpoint_picker", "response_body", false},
	} {
		t.Run(tc.filter+"/"+tc.hook, func(t *testing.T) {
			h := harness.Start(t, harness.Options{LogLevel: "error"})
			chain := harness.EnvoyChain(t)
			h.MustConfigure(chain.WithMerged(tc.filter, map[string]any{"debug": map[string]any{"panicIn": tc.hook}}))
			res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatBody("m", "boom"),
				Cluster: []string{upstream}})
			require.NoError(t, err)
			if tc.want500 {
				require.Equal(t, 500, res.Client.Status)
				require.NotNil(t, res.LocalReply)
				require.Equal(t, tc.filter, res.LocalReply.Who)
				require.Equal(t, "application/json", res.Client.Headers.Get("content-type"))
				var e struct {
					Error struct{ Message, Type, Code string } `json:"error"`
				}
				require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
				require.Contains(t, e.Error.Message, tc.filter)
				require.NotEmpty(t, e.Error.Type)
				require.Nil(t, res.Received, "the upstream must not see a request the barrier answered")
			} else {
				require.Equal(t, 200, res.Client.Status, "a response-path panic passes the response through")
				require.Equal(t, res.UpstreamResponse.Body, res.Client.Body)
			}
			st := h.MustStats()
			v, _ := st.Counter(tc.filter + ".panics")
			require.EqualValues(t, 1, v)

			// The host survives: the plain chain serves the next streams.
			h.MustConfigure(chain)
			for i := 0; i < 3; i++ {
				res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatBody("m", "after"),
					Cluster: []string{upstream}})
				require.NoError(t, err)
				require.Equal(t, 200, res.Client.Status)
			}
			v, _ = h.MustStats().Counter(tc.filter + ".panics")
			require.EqualValues(t, 1, v)
		})
	}
}

// A filter that finishes its request-headers work on a goroutine comes back
// through the scheduler; the callback runs on the stream's worker thread
// (abihost checks it and flags any callback from elsewhere).
func TestScheduledWorkCompletesOnWorkerThread(t *testing.T) {
	upstream := echoUpstream(t)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).WithMerged("ai_router", map[string]any{"debug": map[string]any{"asyncRequestHeaders": true},
		"passThroughPaths": []string{"/debug/async"}}))
	for i := 0; i < 20; i++ {
		// A path ai_router passes through: its request-headers hook returns
		// Continue, which the debug option turns into asynchronous work.
		res, err := h.Send(context.Background(), &harness.Request{Path: "/debug/async", Headers: jsonCT,
			Body: chatBody("m", "async"), Cluster: []string{upstream}})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, "done", res.Received.Headers.Get("X-Inferencepool-Async"))
		require.Equal(t, "done", res.Upstream.Headers.Get("x-inferencepool-async"))
		require.JSONEq(t, string(chatBody("m", "async")), string(res.Received.Body), "StopAll buffered the body and replayed it")
		require.Equal(t, 1, res.State.ScheduledDelivered, "delivered on the worker")
		require.Equal(t, 1, res.State.SchedulerCommits)
		require.Equal(t, 1, res.State.ForeignThreadCommits, "committed from a goroutine's thread")
		require.Zero(t, res.State.ForeignThreadCalls)
		require.Empty(t, res.State.Violations)
	}
	abi := h.MustStats().ABI
	require.Zero(t, abi.Violations)
	require.EqualValues(t, 20, abi.Hooks["scheduled"])
}

// A panic in a scheduled callback (the work that was to resume the stream)
// is answered with a 500 instead of leaving the request hanging, and the
// host keeps serving.
func TestPanicInScheduledCallbackAnswers500(t *testing.T) {
	upstream := echoUpstream(t)
	h := harness.Start(t, harness.Options{LogLevel: "error"})
	h.MustConfigure(harness.EnvoyChain(t).WithMerged("ai_router", map[string]any{
		"debug":            map[string]any{"asyncRequestHeaders": true, "panicIn": "scheduled"},
		"passThroughPaths": []string{"/debug/async"}}))
	for i := 0; i < 3; i++ {
		res, err := h.Send(context.Background(), &harness.Request{Path: "/debug/async", Headers: jsonCT,
			Body: chatBody("m", "async"), Cluster: []string{upstream}})
		require.NoError(t, err)
		require.Equal(t, 500, res.Client.Status)
		require.Contains(t, string(res.Client.Body), "internal error in filter ai_router")
		require.Nil(t, res.Received)
		require.Equal(t, 1, res.State.ScheduledDelivered)
	}
	v, _ := h.MustStats().Counter("ai_router.panics")
	require.EqualValues(t, 3, v)
}

// 1,000 streams, 64 at a time, spread over two worker threads.
func TestThousandStreamsAcrossTwoWorkers(t *testing.T) {
	upstream := echoUpstream(t)
	h := harness.Start(t, harness.Options{Workers: 2})
	h.MustConfigure(harness.EnvoyChain(t))
	const n, par = 1000, 64
	var mu sync.Mutex
	perWorker := map[int]int{}
	jobs := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for g := 0; g < par; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				body := chatBody("m", fmt.Sprintf("stream %d", i))
				res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: body, Cluster: []string{upstream}})
				if err == nil && (res.Client.Status != 200 || string(res.Client.Body) != string(body)) {
					err = fmt.Errorf("stream %d: status %d body %q", i, res.Client.Status, res.Client.Body)
				}
				if err == nil && len(res.State.Violations) > 0 {
					err = fmt.Errorf("stream %d: %v", i, res.State.Violations)
				}
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				perWorker[res.Worker]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Len(t, perWorker, 2)
	require.Equal(t, n, perWorker[0]+perWorker[1])
	require.Greater(t, perWorker[0], n/4)
	require.Greater(t, perWorker[1], n/4)
	abi := h.MustStats().ABI
	require.Zero(t, abi.Violations)
	require.EqualValues(t, 2*n, abi.Hooks["http_filter_new"])
	require.EqualValues(t, 2*n, abi.Hooks["http_filter_destroy"])
}

// An invalid filter_config is refused, and the refusal names the field.
func TestInvalidFilterConfigIsRefused(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	chain := harness.EnvoyChain(t)
	for _, tc := range []struct {
		filter string
		config string
		want   []string
	}{
		{"ai_router", `{"nope":1}`, []string{"ai_router", `"nope"`}},
		{"endpoint_picker", `{"debug":{"panicIn":"nowhere"}}`, []string{"endpoint_picker", "debug.panicIn"}},
		{"ai_router", `{"debug":{"asyncRequestHeaders":"yes"}}`, []string{"asyncRequestHeaders"}},
		{"endpoint_picker", `{"debug":`, []string{"invalid JSON"}},
	} {
		_, err := h.Configure(chain.With(tc.filter, []byte(tc.config)))
		require.Error(t, err, tc.config)
		var ce *harness.CommandError
		require.ErrorAs(t, err, &ce)
		for _, w := range tc.want {
			require.Contains(t, ce.Msg, w)
		}
	}
	// A StringValue filter_config arrives raw and is accepted too.
	_, err := h.Configure(chain.With("ai_router", []byte(`"{\"debug\":{\"panicIn\":\"request_body\"}}"`)))
	require.NoError(t, err)
	// The host still serves with a valid chain.
	h.MustConfigure(chain)
	upstream := echoUpstream(t)
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatBody("m", "ok"), Cluster: []string{upstream}})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status)
}

// The chain comes from envoy.yaml: the dynamic-module filters, in order.
func TestEnvoyChainMatchesEnvoyYAML(t *testing.T) {
	c := harness.EnvoyChain(t)
	names := []string{}
	for _, f := range c {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"ai_router", "endpoint_picker"}, names)
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	hosts, err := harness.ClusterHosts(filepath.Join(root, "envoy.yaml"), "pool")
	require.NoError(t, err)
	require.NotEmpty(t, hosts)
	for _, hp := range hosts {
		_, _, err := net.SplitHostPort(hp)
		require.NoError(t, err)
	}
}

// echoUpstream is an HTTP/1.1 upstream that answers 200 with the request
// body and returns its address.
func echoUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.Header().Set("content-type", "application/json")
		w.Header().Set("x-echo-headers", strings.Join(keys, ","))
		w.Header().Set("content-length", fmt.Sprint(len(b)))
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
