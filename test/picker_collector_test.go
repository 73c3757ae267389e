package test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/promfilter"
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
	h.MustConfigure(pickerChain(t, pickerConfig(cluster, nil)))
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
	// saturated. Gauges follow the pools at most once a second, from a
	// passing stream; on a loaded machine the full server's first scrape
	// may land after a publication, so wait for the next ones.
	var ready, saturated uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(1100 * time.Millisecond)
		_, err = h.Send(context.Background(), req)
		require.NoError(t, err)
		st := h.MustStats()
		var ok bool
		ready, ok = st.Gauge("endpoint_picker.ready_endpoints", "pool", "pool")
		require.True(t, ok, st.String())
		saturated, _ = st.Gauge("endpoint_picker.saturated_endpoints", "pool", "pool")
		if ready == 2 && saturated == 1 {
			break
		}
	}
	require.EqualValues(t, 2, ready)
	require.EqualValues(t, 1, saturated)
}

// The collector asks for the families it reads (`?name[]=`, prometheus_client's
// filter, which vLLM's /metrics honours): a server that filters answers a few
// hundred bytes of the 54.6 KB exposition and the picker routes on them as
// on the whole one; with filterByName false the path goes as given.
func TestPickerAsksForTheFamiliesItReads(t *testing.T) {
	fixture, err := os.ReadFile("../picker/testdata/vllm_metrics_v0.10.2_full.txt")
	require.NoError(t, err)
	const waiting = `vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct",engine="0"} 3.0`
	idle := []byte(strings.Replace(string(fixture), waiting, strings.Replace(waiting, "} 3.0", "} 0.0", 1), 1))
	for _, tc := range []struct {
		name     string
		filter   *bool
		filtered bool
	}{
		{name: "by default", filtered: true},
		{name: "filterByName false", filter: new(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var queries sync.Map // RequestURI → answered bytes
			server := func(expo []byte) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/metrics" {
						w.Header().Set("content-type", "application/json")
						_, _ = w.Write([]byte(`{"id":"x","object":"list","model":"m"}`))
						return
					}
					out := expo
					if names := promfilter.Names(r.URL.Query()); len(names) > 0 {
						out = promfilter.Filter(expo, names)
					}
					queries.Store(r.RequestURI, len(out))
					w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
					_, _ = w.Write(out)
				}))
				t.Cleanup(srv.Close)
				return strings.TrimPrefix(srv.URL, "http://")
			}
			loadedAddr, idleAddr := server(fixture), server(idle)
			cluster := []string{loadedAddr, idleAddr}
			scrape := map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1s"}
			if tc.filter != nil {
				scrape["filterByName"] = *tc.filter
			}
			h := harness.Start(t, harness.Options{})
			h.MustConfigure(pickerChain(t, pickerConfig(cluster, map[string]any{"scrape": scrape})))
			req := &harness.Request{Headers: jsonCT, Body: chatReq("m", "hello", 1), Cluster: cluster}
			waitDestination(t, h, req)
			res, err := h.Send(context.Background(), req)
			require.NoError(t, err)
			require.Equal(t, idleAddr+","+loadedAddr, destination(res), "the numbers were read")

			n := 0
			queries.Range(func(k, v any) bool {
				n++
				u, err := url.Parse(k.(string))
				require.NoError(t, err)
				if !tc.filtered {
					require.Equal(t, "/metrics", k, "the path as given")
					require.Equal(t, len(fixture), v)
					return true
				}
				require.ElementsMatch(t, []string{"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
					"vllm:gpu_cache_usage_perc", "vllm:lora_requests_info", "vllm:cache_config_info"}, u.Query()["name[]"])
				require.Less(t, v.(int), len(fixture)/20, "a few hundred bytes of %d", len(fixture))
				return true
			})
			require.Positive(t, n)
		})
	}
}
