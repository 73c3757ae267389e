package test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// The library make build ships (no test build tag) has no test injection: a
// filter_config's "debug" object is refused when the config loads, naming
// the field, while the same chain without it loads and serves.
func TestProductionLibraryRefusesDebug(t *testing.T) {
	h := harness.Start(t, harness.Options{Lib: harness.ProductionLib(t)})
	chain := harness.EnvoyChain(t)
	for _, tc := range []struct {
		filter string
		config string
	}{
		{"ai_router", `{"debug":{"panicIn":"request_headers"}}`},
		{"endpoint_picker", `(its pools, plus {"debug":{"asyncRequestHeaders":true}})`},
		{"ai_router", `"{\"debug\":{\"panicIn\":\"request_body\"}}"`}, // a StringValue
	} {
		c := chain.With(tc.filter, []byte(tc.config))
		if tc.filter == "endpoint_picker" { // keep its pools: only "debug" is wrong
			c = chain.WithMerged(tc.filter, map[string]any{"debug": map[string]any{"asyncRequestHeaders": true}})
		}
		_, err := h.Configure(c)
		var ce *harness.CommandError
		require.ErrorAs(t, err, &ce, tc.config)
		require.Contains(t, ce.Msg, tc.filter)
		require.Contains(t, ce.Msg, `field "debug" is test-only`)
	}
	h.MustConfigure(chain)
	upstream := echoUpstream(t)
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatBody("m", "ok"), Cluster: []string{upstream}})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status)
}

// The test-only injection and its sjson dependency are in the test build
// only.
func TestDebugInjectionOnlyInTestBuild(t *testing.T) {
	deps := func(tags ...string) string {
		args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		root, err := harness.RepoRoot()
		require.NoError(t, err)
		cmd := exec.Command("go", append(args, "./module")...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	require.NotContains(t, deps(), "github.com/tidwall/sjson")
	require.Contains(t, deps("inferencepool_debug"), "github.com/tidwall/sjson")
}
