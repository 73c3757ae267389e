package harness

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Envoy v1.39's /stats/prometheus as PrometheusStatsFormatter writes it
// (TYPE lines, sanitized names and tag names, counters without _total,
// histograms as _bucket/_sum/_count), in both spellings of the module's
// stats. Written by hand from that formatter: no Envoy runs here.
const envoyPrometheus = `# TYPE envoy_cluster_upstream_rq_retry counter
envoy_cluster_upstream_rq_retry{envoy_cluster_name="pool"} 2
envoy_cluster_upstream_rq_retry{envoy_cluster_name="other"} 5
# TYPE envoy_dynamicmodulescustom_endpoint_picker_picks counter
envoy_dynamicmodulescustom_endpoint_picker_picks{pool="a",endpoint="127.0.0.1:8001"} 3
envoy_dynamicmodulescustom_endpoint_picker_picks{pool="a",endpoint="127.0.0.1:8002"} 4
envoy_dynamicmodulescustom_endpoint_picker_picks{pool="b",endpoint="127.0.0.1:8003"} 6
# TYPE endpoint_picker_ready_endpoints gauge
endpoint_picker_ready_endpoints{pool="b"} 1
# TYPE envoy_dynamicmodulescustom_gen_ai_client_token_usage histogram
envoy_dynamicmodulescustom_gen_ai_client_token_usage_bucket{gen_ai_original_model="alias",gen_ai_token_type="input",le="16"} 1
envoy_dynamicmodulescustom_gen_ai_client_token_usage_bucket{gen_ai_original_model="alias",gen_ai_token_type="input",le="+Inf"} 2
envoy_dynamicmodulescustom_gen_ai_client_token_usage_sum{gen_ai_original_model="alias",gen_ai_token_type="input"} 40
envoy_dynamicmodulescustom_gen_ai_client_token_usage_count{gen_ai_original_model="alias",gen_ai_token_type="input"} 2
`

func TestPromStats(t *testing.T) {
	st, err := ParsePromStats(strings.NewReader(envoyPrometheus))
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		get   func() (uint64, bool)
		want  uint64
		found bool
	}{
		{"Envoy's own stat by its Prometheus name", func() (uint64, bool) {
			return st.Counter("envoy_cluster_upstream_rq_retry", "envoy_cluster_name", "pool")
		}, 2, true},
		{"a module stat by its dotted name, one series", func() (uint64, bool) {
			return st.Counter("endpoint_picker.picks", "pool", "a", "endpoint", "127.0.0.1:8002")
		}, 4, true},
		{"the sum over the series that include the tags", func() (uint64, bool) { return st.Counter("endpoint_picker.picks", "pool", "a") }, 7, true},
		{"no series with these tags", func() (uint64, bool) { return st.Counter("endpoint_picker.picks", "pool", "c") }, 0, false},
		{"the stripped spelling", func() (uint64, bool) { return st.Gauge("endpoint_picker.ready_endpoints", "pool", "b") }, 1, true},
		{"dotted tag names", func() (uint64, bool) {
			return st.HistogramCount("gen_ai.client.token.usage", "gen_ai.original.model", "alias", "gen_ai.token.type", "input")
		}, 2, true},
		{"an unknown stat", func() (uint64, bool) { return st.Counter("endpoint_picker.nope") }, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := tc.get()
			require.Equal(t, tc.found, ok)
			require.Equal(t, tc.want, v)
		})
	}
	_, err = ParsePromStats(strings.NewReader("envoy_x{a=\"1\" 2\n"))
	require.Error(t, err)
}
