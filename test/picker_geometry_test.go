package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// vllmGeometryExpo is a vLLM exposition with its cache geometry: blocks of
// 16 tokens.
func vllmGeometryExpo(kv float64, blocks int) string {
	return fmt.Sprintf("vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"%d\"} 1\n"+
		"vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc %g\n", blocks, kv)
}

// The learned prefix index holds for each server what its scraped cache
// geometry says it can: a shared prompt sent to A, followed there by other
// conversations, is still a reason to prefer A when A's KV cache is large,
// and not when it is too small to have kept it. B is a little less loaded,
// so it wins whenever affinity does not.
func TestPickerPrefixIndexSizedFromCacheGeometry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks int // A's and B's num_gpu_blocks
		extra  map[string]any
		want   int // 0: A, 1: B
	}{
		// The index is learned mode's (the default is rendezvous).
		// 8 blocks × 16 tokens × 4 bytes: 512 bytes of prompt, less than one
		// of these conversations.
		{name: "small cache: the prompt was evicted, load decides", blocks: 8, extra: learnedMode, want: 1},
		{name: "large cache: affinity to A", blocks: 4096, extra: learnedMode, want: 0},
		{name: "lruCapacity overrides the geometry", blocks: 8, extra: map[string]any{"prefix": map[string]any{"mode": "learned", "lruCapacity": 31250}}, want: 0},
		{name: "the Inference Extension's scorer ignores the geometry", blocks: 8, extra: map[string]any{"prefix": map[string]any{"mode": "inference-extension"}}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newSwitchableServer(t, vllmGeometryExpo(0.35, tc.blocks))
			b := newSwitchableServer(t, vllmGeometryExpo(0.3, tc.blocks))
			cluster := []string{a.addr, b.addr}
			h := harness.Start(t, harness.Options{})
			h.MustConfigure(pickerChain(t, pickerConfig(cluster, tc.extra)))
			waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: cluster})

			send := func(prompt string, hint []string) string {
				req := &harness.Request{Headers: jsonCT, Body: chatReq("m", prompt, 1), Cluster: cluster}
				if hint != nil {
					req.MetadataLists = []harness.MetadataList{{Namespace: "envoy.lb.subset_hint", Key: "x-gateway-destination-endpoint-subset", Values: hint}}
				}
				res, err := h.Send(context.Background(), req)
				require.NoError(t, err)
				require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
				return strings.Split(destination(res), ",")[0]
			}
			shared := "You are the shared assistant. " + strings.Repeat("Follow the house style. ", 40)
			require.Equal(t, a.addr, send(shared, []string{a.addr}))
			for i := range 6 {
				other := fmt.Sprintf("Conversation %d. ", i) + strings.Repeat(fmt.Sprintf("Topic %d in detail. ", i), 40)
				require.Equal(t, a.addr, send(other, []string{a.addr}))
			}
			time.Sleep(20 * time.Millisecond) // the index applies updates about 1 ms after the pick
			require.Equal(t, cluster[tc.want], send(shared, nil))
		})
	}
}

// The prefix scorer's own parameters are checked at load, through the ABI
// as Envoy would load them: a bad value refuses the config naming its field.
func TestPickerPrefixConfigRefusedNamingTheField(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	for _, tc := range []struct {
		prefix map[string]any
		want   string
	}{
		{prefix: map[string]any{"lruCapacity": -5}, want: "pools[0].prefix.lruCapacity"},
		{prefix: map[string]any{"bytesPerToken": -1}, want: "pools[0].prefix.bytesPerToken"},
		{prefix: map[string]any{"rendezvousFloor": 2}, want: "pools[0].prefix.rendezvousFloor"},
		{prefix: map[string]any{"loadBound": 0.5}, want: "pools[0].prefix.loadBound"},
		{prefix: map[string]any{"mode": "magic"}, want: "pools[0].prefix.mode"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			cfg := pickerConfig([]string{"127.0.0.1:9"}, map[string]any{"prefix": tc.prefix})
			_, err := h.Configure(pickerChain(t, cfg))
			var ce *harness.CommandError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, ce.Msg, tc.want)
		})
	}
}

var learnedMode = map[string]any{"prefix": map[string]any{"mode": "learned"}}
