package test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// Every endpoint of a pool has its state as Envoy gauges (tags pool and
// endpoint): scraped waiting and running requests, KV-cache use, our
// in-flight count, saturated and healthy; an endpoint that leaves the pool
// is zeroed, and no tag takes a value the client chose.
func TestPickerPerEndpointStats(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 2})
	file := filepath.Join(t.TempDir(), "endpoints.json")
	writeEndpoints := func(addrs []string) {
		b, _ := json.Marshal(addrs)
		tmp := file + ".tmp"
		require.NoError(t, os.WriteFile(tmp, b, 0o600))
		require.NoError(t, os.Rename(tmp, file))
	}
	writeEndpoints(sim.Addrs)
	h := harness.Start(t, harness.Options{})
	cfg := pickerConfig(nil, map[string]any{"endpoints": map[string]any{"file": map[string]any{"path": file, "interval": "100ms"}}})
	h.MustConfigure(pickerChain(t, cfg))
	waitPicking(t, h, sim.Model, sim.Addrs)

	publish := func() *harness.Stats {
		time.Sleep(1100 * time.Millisecond) // gauges follow at most once a second
		_, err := h.Send(context.Background(), &harness.Request{Headers: append(jsonCT, [2]string{"x-gateway-destination-endpoint", "10.9.9.9:1"}),
			Body: chatReq(sim.Model, "one more", 1), Cluster: sim.Addrs})
		require.NoError(t, err)
		return h.MustStats()
	}
	st := publish()
	for _, a := range sim.Addrs {
		healthy, ok := st.Gauge("endpoint_picker.endpoint_healthy", "pool", "pool", "endpoint", a)
		require.True(t, ok, st.String())
		require.EqualValues(t, 1, healthy, a)
		for _, name := range []string{"endpoint_waiting_requests", "endpoint_running_requests", "endpoint_kv_cache_usage_percent", "endpoint_in_flight", "endpoint_saturated"} {
			_, ok := st.Gauge("endpoint_picker."+name, "pool", "pool", "endpoint", a)
			require.True(t, ok, "%s for %s", name, a)
		}
	}
	_, ok := st.Gauge("endpoint_picker.endpoint_healthy", "pool", "pool", "endpoint", "10.9.9.9:1")
	require.False(t, ok, "the client's own destination is never a tag")

	// One endpoint leaves the pool: its gauges are zeroed.
	writeEndpoints(sim.Addrs[:1])
	require.Eventually(t, func() bool {
		st = publish()
		gone, _ := st.Gauge("endpoint_picker.endpoint_healthy", "pool", "pool", "endpoint", sim.Addrs[1])
		kept, _ := st.Gauge("endpoint_picker.endpoint_healthy", "pool", "pool", "endpoint", sim.Addrs[0])
		return gone == 0 && kept == 1
	}, 10*time.Second, 10*time.Millisecond)
}
