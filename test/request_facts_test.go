package test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// ai_router hands its parse of the body to endpoint_picker without
// publishing a pointer: Envoy's dynamic metadata holds none (the SDK's
// SetData printed one in composer.shared_data), the filter state holds an
// opaque token, and endpoint_picker still picks from ai_router's facts: with
// them it never reads the body, so a body over its own 4 MiB limit (but
// within ai_router's) is routed, while endpoint_picker alone answers 413.
func TestRequestFactsReachPickerWithoutPointer(t *testing.T) {
	up := newUpstream(t, "up", 200)
	h := harness.Start(t, harness.Options{BufferLimit: -1})
	chain := harness.EnvoyChain(t).
		WithMerged("ai_router", map[string]any{"maxRequestBodyBytes": 8 << 20}).
		WithMerged("endpoint_picker", map[string]any{"pools": []any{map[string]any{"name": "pool",
			"endpoints": map[string]any{"static": []string{up.addr}}}}})
	body := chatBody("m", strings.Repeat("x", 5<<20))
	for _, tc := range []struct {
		name       string
		chain      harness.Chain
		wantStatus int
	}{
		{"ai_router then endpoint_picker", chain, 200},
		{"endpoint_picker alone reads the body itself", chain.Only("endpoint_picker"), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.MustConfigure(tc.chain)
			res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: body, Cluster: []string{up.addr}})
			require.NoError(t, err)
			require.Equal(t, tc.wantStatus, res.Client.Status, string(res.Client.Body))
			require.NotContains(t, res.State.Metadata, "composer.shared_data")
			for ns, kv := range res.State.Metadata {
				for k, v := range kv {
					if s, ok := v.(string); ok {
						require.NotRegexp(t, `^[0-9]{6,}$`, s, "%s/%s looks like a pointer", ns, k)
					}
				}
			}
			tok, ok := res.State.FilterState["inferencepool.request_facts"]
			if tc.wantStatus == 200 {
				require.True(t, ok)
				require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), string(tok))
				require.Len(t, res.Received.Body, len(body))
			} else {
				require.False(t, ok, "nothing handed over without ai_router")
			}
		})
	}
}
