package main

import (
	"fmt"
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"strings"
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// routerRig is one ai_router config with a budget of budget tokens.
func routerRig(t *testing.T, raw string) *routerFilterConfig {
	rc, err := newRouterFilterConfig(&fakeConfigHandle{}, mustRouterConfig(t, raw))
	require.NoError(t, err)
	return rc
}

// startChat runs a chat request through ai_router's request hooks and
// reports whether it went on upstream.
func startChat(t *testing.T, rc *routerFilterConfig, s *fakeStream, body string, extra ...[2]string) (*aiRouterFilter, bool) {
	chatHeaders(s, []byte(body))
	s.reqHeaders.kv = append(s.reqHeaders.kv, extra...)
	f := &aiRouterFilter{cfg: rc, h: s, s: abi.NewStream(s)}
	if f.OnRequestHeaders(&s.reqHeaders, false) != shared.HeadersStatusStop {
		t.Fatal("headers went on before the body")
	}
	return f, f.OnRequestBody(&fakeBody{b: []byte(body)}, true) == shared.BodyStatusContinue
}

// The reservation is settled exactly once whatever order the end hooks
// come in, including OnDestroy without stream_complete: what the key can
// still reserve afterwards is exactly the budget less the charge.
func TestRouterSettlesOnEveryPath(t *testing.T) {
	body := `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`
	prompt := int(transform.EstimateTokens(len(body)))
	const budget = 1000
	for _, tt := range []struct {
		name   string
		end    func(f *aiRouterFilter, s *fakeStream)
		charge int
	}{
		{"destroy only", func(f *aiRouterFilter, s *fakeStream) { f.OnDestroy() }, prompt},
		{"complete, destroy", func(f *aiRouterFilter, s *fakeStream) { f.OnStreamComplete(); f.OnDestroy() }, prompt},
		{"response, complete, destroy", func(f *aiRouterFilter, s *fakeStream) {
			s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "application/json"}}
			f.OnResponseHeaders(&s.respHeaders, false)
			f.OnResponseBody(&fakeBody{b: []byte(`{"usage":{"prompt_tokens":7,"completion_tokens":5}}`)}, true)
			f.OnStreamComplete()
			f.OnDestroy()
		}, 12},
		{"headers only, destroy (no stream_complete)", func(f *aiRouterFilter, s *fakeStream) {
			s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "text/event-stream"}}
			f.OnResponseHeaders(&s.respHeaders, false)
			f.OnResponseBody(&fakeBody{b: []byte(`data: {"choices":[{"delta":{"content":"abcdefgh"}}]}` + "\n\n")}, false)
			f.OnDestroy() // what the meter saw: 8 bytes of content
		}, prompt + 2},
		{"503, trailers, complete", func(f *aiRouterFilter, s *fakeStream) {
			s.respHeaders.kv = [][2]string{{":status", "503"}}
			f.OnResponseHeaders(&s.respHeaders, false)
			f.OnResponseTrailers(&s.respHeaders)
			f.OnStreamComplete()
			f.OnDestroy()
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := routerRig(t, fmt.Sprintf(`{"budget":{"header":"x-api-key","tokens":%d}}`, budget))
			s := newFakeStream()
			f, ok := startChat(t, rc, s, body, [2]string{"x-api-key", "k"})
			require.True(t, ok)
			tt.end(f, s)
			key := rc.budgets.Key("k")
			r, ok, _ := rc.budgets.Reserve(key, uint64(budget-tt.charge))
			require.True(t, ok, "reservation leaked or charged twice")
			_, ok, _ = rc.budgets.Reserve(key, 1)
			require.False(t, ok, "charged less than %d", tt.charge)
			rc.budgets.Settle(r, 0)
		})
	}
}

// A rewritten model and a stripped usage chunk together: the client reads
// its own model name and no usage chunk, in whatever frames the server
// sends; the costs come from the usage the meter read.
func TestRouterRestoresAndStrips(t *testing.T) {
	rc := routerRig(t, `{"rewrites":[{"model":"alias","targets":[{"model":"real-model"}]}],"costs":[{"metadataKey":"total","type":"total"}]}`)
	stream := `data: {"model":"real-model","choices":[{"delta":{"content":"hi"}}]}` + "\n\n" +
		`data: {"model":"real-model","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1}}` + "\n\n" +
		"data: [DONE]\n\n"
	want := `data: {"model":"alias","choices":[{"delta":{"content":"hi"}}]}` + "\n\ndata: [DONE]\n\n"
	for cut := 0; cut <= len(stream); cut++ {
		s := newFakeStream()
		f, ok := startChat(t, rc, s, `{"model":"alias","stream":true,"messages":[{"role":"user","content":"x"}]}`,
			[2]string{"accept-encoding", "gzip, br"})
		require.True(t, ok)
		require.True(t, f.decision.UsageInjected)
		require.Empty(t, s.reqHeaders.Get("accept-encoding"), "edits need plain bytes")
		s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "text/event-stream"}, {"content-length", "999"}}
		f.OnResponseHeaders(&s.respHeaders, false)
		require.Empty(t, s.respHeaders.Get("content-length"))
		var client strings.Builder
		for i, part := range []string{stream[:cut], stream[cut:]} {
			b := &fakeBody{b: []byte(part)}
			f.OnResponseBody(b, i == 1)
			client.Write(b.b)
		}
		f.OnStreamComplete()
		f.OnDestroy()
		require.Equal(t, want, client.String(), "cut at %d", cut)
		require.Equal(t, uint64(5), s.metadata[transform.CostNamespace+"/total"])
		require.NotContains(t, s.metadata, transform.CostNamespace+"/"+transform.UsageEstimateKey)
	}
}
