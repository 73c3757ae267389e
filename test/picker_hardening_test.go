package test

import (
	"context"
	"encoding/json"
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

// modelServers are n local servers that answer /metrics with the vLLM
// fixture (all equally loaded) and any other request with a small JSON
// body: enough for the picker to pick and for the router to forward.
func modelServers(t *testing.T, n int) []string {
	t.Helper()
	expo, err := os.ReadFile("../picker/testdata/vllm_metrics_sim_v0.10.2.txt")
	require.NoError(t, err)
	var addrs []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				_, _ = w.Write(expo)
				return
			}
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write([]byte(`{"id":"x","object":"list","model":"m"}`))
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}

// waitDestination sends req until the picker names a destination (its
// first scrapes have landed).
func waitDestination(t *testing.T, h *harness.Host, req *harness.Request) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		if d := destination(res); d != "" && len(strings.Split(d, ",")) == min(3, len(req.Cluster)) {
			return
		}
		require.True(t, time.Now().Before(deadline), "the picker never named a destination")
		time.Sleep(50 * time.Millisecond)
	}
}

// The two deployments, ai_router + endpoint_picker and endpoint_picker
// alone, hash the same prompt bytes for every endpoint kind: with
// rendezvous prefix affinity (a pure function of the prompt's hashes and the
// addresses) two independent proxies, one of each kind, send every prompt
// to the same endpoint. Before endpoint_picker read bodies with ai_router's
// parser, a completion's string prompt kept its quotes and embeddings and
// responses had no prompt at all when it ran alone.
func TestPickerBothDeploymentsHashTheSamePrompt(t *testing.T) {
	addrs := modelServers(t, 8)
	cfg := pickerConfig(addrs, map[string]any{"prefix": map[string]any{"mode": "rendezvous"}})
	withRouter := harness.Start(t, harness.Options{})
	withRouter.MustConfigure(harness.EnvoyChain(t).WithJSON("endpoint_picker", cfg))
	alone := harness.Start(t, harness.Options{})
	alone.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", cfg))
	warm := &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs}
	waitDestination(t, withRouter, warm)
	waitDestination(t, alone, warm)

	// Long enough for the 8-block (512-byte) rendezvous key.
	text := func(i int) string {
		return fmt.Sprintf("Document %d. ", i) + strings.Repeat(fmt.Sprintf("Context line %d of a shared preamble. ", i), 20)
	}
	kinds := []struct {
		name, path string
		body       func(i int) any
	}{
		{"chat", "/v1/chat/completions", func(i int) any {
			return map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": text(i)}}}
		}},
		{"completion string", "/v1/completions", func(i int) any { return map[string]any{"model": "m", "prompt": text(i)} }},
		{"completion list", "/v1/completions", func(i int) any { return map[string]any{"model": "m", "prompt": []string{text(i)}} }},
		{"embeddings", "/v1/embeddings", func(i int) any { return map[string]any{"model": "m", "input": text(i)} }},
		{"responses", "/v1/responses", func(i int) any {
			return map[string]any{"model": "m", "input": []map[string]string{{"role": "user", "content": text(i)}}}
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			firsts := map[string]bool{}
			for i := 0; i < 12; i++ {
				body, err := json.Marshal(k.body(i))
				require.NoError(t, err)
				var got [2]string
				for j, h := range []*harness.Host{withRouter, alone} {
					res, err := h.Send(context.Background(), &harness.Request{Path: k.path, Headers: jsonCT, Body: body, Cluster: addrs})
					require.NoError(t, err)
					require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
					got[j] = strings.Split(destination(res), ",")[0]
					require.NotEmpty(t, got[j])
				}
				require.Equal(t, got[0], got[1], "prompt %d: with ai_router to %s, alone to %s", i, got[0], got[1])
				firsts[got[0]] = true
			}
			// The prompts differ, so affinity spreads them: equal picks are
			// not an accident of every prompt going to one endpoint.
			require.Greater(t, len(firsts), 2)
		})
	}
}

// endpoint_picker alone: a truncated inference body is answered 400 in
// OpenAI's shape (never forwarded); a multipart upload to a path it does not
// parse is routed on load, not refused; nor is a JSON pass-through body.
func TestPickerAloneJudgesOnlyInferenceBodies(t *testing.T) {
	addrs := modelServers(t, 3)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", pickerConfig(addrs, nil)))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})

	multipart := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....WAVE\r\n--b--\r\n"
	for _, tc := range []struct {
		name, path, contentType string
		chunks                  []string
		wantStatus              int
		wantCode                string
	}{
		{name: "truncated chat", path: "/v1/chat/completions", contentType: "application/json",
			chunks: []string{`{"model":"m","messages":[{"role":"user",`, `"content":"cut"}`}, wantStatus: 400, wantCode: "invalid_json"},
		{name: "completion prompt of the wrong type", path: "/v1/completions", contentType: "application/json",
			chunks: []string{`{"model":"m","prompt":{}}`}, wantStatus: 400, wantCode: "invalid_type"},
		{name: "embeddings without input", path: "/v1/embeddings", contentType: "application/json",
			chunks: []string{`{"model":"m"}`}, wantStatus: 400, wantCode: "missing_required_parameter"},
		{name: "multipart transcription", path: "/v1/audio/transcriptions", contentType: "multipart/form-data; boundary=b",
			// One frame: a body streamed on in several frames loses its last
			// one under the route's retry buffering (Envoy's dynamic-module
			// filter moves the last frame into the stream's buffered body,
			// which is the router's retry copy); ai_router's pass-through
			// has the same problem. Reported, not ours to fix here.
			chunks: []string{multipart}, wantStatus: 200},
		{name: "JSON pass-through, not valid", path: "/v1/rerank", contentType: "application/json",
			chunks: []string{`{"model":"m","query":`}, wantStatus: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chunks [][]byte
			for _, c := range tc.chunks {
				chunks = append(chunks, []byte(c))
			}
			res, err := h.Send(context.Background(), &harness.Request{Path: tc.path,
				Headers: harness.Headers{{"content-type", tc.contentType}}, Chunks: chunks, Cluster: addrs})
			require.NoError(t, err)
			require.Equal(t, tc.wantStatus, res.Client.Status, string(res.Client.Body))
			if tc.wantStatus != 200 {
				require.Nil(t, res.Received, "a bad body is never forwarded")
				var e struct {
					Error struct{ Message, Type, Code string } `json:"error"`
				}
				require.NoError(t, json.Unmarshal(res.Client.Body, &e), string(res.Client.Body))
				require.Equal(t, tc.wantCode, e.Error.Code)
				require.Equal(t, "invalid_request_error", e.Error.Type)
				return
			}
			require.NotEmpty(t, destination(res), "picked, not left to the fallback")
			require.Equal(t, strings.Join(tc.chunks, ""), string(res.Received.Body), "the body reaches the server whole")
		})
	}
}
