package test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// The library reuses a stream's filters for later streams (module
// filter_pool.go). Streams that rewrite the model (alias → target, the
// answer's "target" mapped back to "alias") alternate with streams that do
// not, on one worker (so that a stream most likely takes the filter the
// one before it left): a stream without a rewrite whose server answers
// "target" must get "target", never a leftover of the stream before it.
func TestReusedFiltersKeepNothingOfTheStreamBefore(t *testing.T) {
	up := newFakeOpenAI(t)
	h := harness.Start(t, harness.Options{Workers: 1})
	h.MustConfigure(harness.EnvoyChain(t).Only("ai_router").WithJSON("ai_router",
		map[string]any{"rewrites": []map[string]any{{"model": "alias", "targets": []map[string]any{{"model": "target"}}}}}))
	chat := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}
	for i := range 8 {
		a := sendTo(t, h, up, sendOpts{path: "/v1/chat/completions", body: chat("alias")})
		require.Equal(t, 200, a.Client.Status, string(a.Client.Body))
		require.Contains(t, string(a.Client.Body), `"model":"alias"`, "round %d", i)

		b := sendTo(t, h, up, sendOpts{path: "/v1/chat/completions", body: chat("other"),
			headers: harness.Headers{{"x-respond-model", "target"}}})
		require.Equal(t, 200, b.Client.Status, string(b.Client.Body))
		require.Equal(t, "other", b.Received.Headers.Get("X-Ai-Eg-Model"), "round %d", i)
		require.Equal(t, string(b.UpstreamResponse.Body), string(b.Client.Body), "round %d: the answer passes unchanged", i)
		require.Contains(t, string(b.Client.Body), `"model":"target"`)
	}
}
