package test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// The collector inside the library reads a realistic vLLM exposition
// (54.6 KB: every documented family and histogram, python_/process_/http_
// families), chunked or with a Content-Length, over its own keep-alive
// connections, and routes on the numbers it finds there: the idle server
// first, the loaded one after it, the one whose KV cache is full not at all.
func TestPickerReadsRealisticVLLMExposition(t *testing.T) {
	fixture, err := os.ReadFile("../picker/testdata/vllm_metrics_v0.10.2_full.txt")
	require.NoError(t, err)
	const waiting = `vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct",engine="0"} 3.0`
	const kv = `vllm:kv_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B-Instruct",engine="0"} 0.41274`
	require.Contains(t, string(fixture), waiting)
	require.Contains(t, string(fixture), kv)
	idle := strings.Replace(string(fixture), waiting, strings.Replace(waiting, "} 3.0", "} 0.0", 1), 1)
	full := strings.Replace(string(fixture), kv, strings.Replace(kv, "} 0.41274", "} 0.95", 1), 1)

	server := func(expo string, contentLength bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
				if contentLength {
					w.Header().Set("Content-Length", fmt.Sprint(len(expo)))
				} // else the Go server chunks it, as promhttp's servers do
				_, _ = w.Write([]byte(expo))
				return
			}
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write([]byte(`{"id":"x","object":"list","model":"m"}`))
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	loadedAddr, idleAddr, fullAddr := server(string(fixture), false), server(idle, true), server(full, false)
	cluster := []string{loadedAddr, idleAddr, fullAddr}

	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).WithJSON("endpoint_picker", pickerConfig(cluster, nil)))
	req := &harness.Request{Headers: jsonCT, Body: chatReq("m", "hello", 1), Cluster: cluster}
	// The full server is filtered out, so the list has two entries once both
	// others are scraped.
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: cluster[:2]})
	for i := 0; i < 5; i++ {
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, idleAddr+","+loadedAddr, destination(res))
	}
	// All three expositions were read: two endpoints ready, the full one
	// saturated. Gauges follow the pools at most once a second,
	// from a passing stream.
	time.Sleep(1100 * time.Millisecond)
	_, err = h.Send(context.Background(), req)
	require.NoError(t, err)
	st := h.MustStats()
	ready, ok := st.Gauge("endpoint_picker.ready_endpoints", "pool", "pool")
	require.True(t, ok, st.String())
	require.EqualValues(t, 2, ready)
	saturated, ok := st.Gauge("endpoint_picker.saturated_endpoints", "pool", "pool")
	require.True(t, ok)
	require.EqualValues(t, 1, saturated)
}
