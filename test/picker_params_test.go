package test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// Plugin parameters are declared, defaulted and checked in each plugin's
// package (picker/README.md, "Writing a plugin"); a bad one still refuses
// the endpoint_picker config when Envoy loads it, naming the field by its
// path, every problem at once.
func TestPickerPluginParamsRefusedNamingTheField(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	chain := harness.EnvoyChain(t).Only("endpoint_picker")
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  []string
	}{
		{name: "prefix block count", extra: map[string]any{"prefix": map[string]any{"maxBlocks": 5000}},
			want: []string{"pools[0].prefix.maxBlocks: must be 1-4096"}},
		{name: "prefix mode and slack", extra: map[string]any{"prefix": map[string]any{"mode": "lru", "queueSlack": -1}},
			want: []string{`pools[0].prefix.mode: must be "learned" or "rendezvous"`, "pools[0].prefix.queueSlack: must be >= 0"}},
		{name: "saturation thresholds", extra: map[string]any{"saturation": map[string]any{"queue": -1, "kvCache": 2}},
			want: []string{"pools[0].saturation.queue: must be > 0", "pools[0].saturation.kvCache: must be in (0, 1]"}},
		{name: "unknown prefix field", extra: map[string]any{"prefix": map[string]any{"blocksize": 32}},
			want: []string{`pools[0].prefix: unknown field "blocksize" (did you mean "blockSize"?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := json.Marshal(pickerConfig([]string{"127.0.0.1:1"}, tc.extra))
			require.NoError(t, err)
			_, err = h.Configure(chain.With("endpoint_picker", cfg))
			var ce *harness.CommandError
			require.ErrorAs(t, err, &ce)
			for _, w := range tc.want {
				require.Contains(t, ce.Msg, w)
			}
		})
	}
	// The same sections, valid, load.
	cfg, err := json.Marshal(pickerConfig([]string{"127.0.0.1:1"}, map[string]any{
		"prefix":     map[string]any{"mode": "rendezvous", "maxBlocks": 4096, "queueSlack": 0},
		"saturation": map[string]any{"queue": 10, "kvCache": 1},
	}))
	require.NoError(t, err)
	_, err = h.Configure(chain.With("endpoint_picker", cfg))
	require.NoError(t, err)
}
