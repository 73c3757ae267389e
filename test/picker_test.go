package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// pickerConfig is an endpoint_picker filter_config for one pool of addrs,
// scraped often so tests see load quickly.
func pickerConfig(addrs []string, extra map[string]any) map[string]any {
	pool := map[string]any{
		"name":      "pool",
		"endpoints": map[string]any{"static": addrs},
		"scrape":    map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1s"},
	}
	for k, v := range extra {
		pool[k] = v
	}
	return map[string]any{"pools": []any{pool}}
}

func chatReq(model, prompt string, maxTokens int) []byte {
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	return b
}

// destination is what the upstream received in x-gateway-destination-endpoint.
func destination(res *harness.Result) string {
	if res.Received == nil {
		return ""
	}
	return res.Received.Headers.Get("X-Gateway-Destination-Endpoint")
}

// waitPicking sends requests until the picker has metrics from every
// endpoint of the cluster (up to the default list length of 3) and names
// them all. Until the first scrape fail-open lets Envoy's fallback pick, and
// the first scrapes land one by one.
func waitPicking(t *testing.T, h *harness.Host, model string, cluster []string) {
	t.Helper()
	want := min(len(cluster), 3)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq(model, "warm up", 1), Cluster: cluster})
		require.NoError(t, err)
		if d := destination(res); d != "" && len(strings.Split(d, ",")) >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the picker never named a destination")
}

// sendDirect holds n long requests on one endpoint, bypassing the proxy.
// ignore_eos makes the simulator answer all maxTokens tokens: its random
// mode may otherwise end the answer, and the load, after one.
func sendDirect(t *testing.T, addr, model string, n, maxTokens int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": maxTokens, "ignore_eos": true,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("direct load %d", i)}}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	t.Cleanup(wg.Wait)
	return &wg
}

// A client that names its own endpoint is not obeyed: the picker's list
// replaces the header, and envoy.lb metadata carries the same value.
func TestPickerOverwritesClientDestination(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 3})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(sim.Addrs, nil)))
	waitPicking(t, h, sim.Model, sim.Addrs)

	forged := sim.Addrs[0]
	for i := 0; i < 10; i++ {
		res, err := h.Send(context.Background(), &harness.Request{
			Headers: append(harness.Headers{{"x-gateway-destination-endpoint", forged}}, jsonCT...),
			Body:    chatReq(sim.Model, fmt.Sprintf("prompt %d", i), 1), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		dest := destination(res)
		list := strings.Split(dest, ",")
		require.Len(t, list, 3, "best endpoint plus two fallbacks: %q", dest)
		require.ElementsMatch(t, sim.Addrs, list)
		require.Equal(t, list[0], res.Endpoint, "Envoy sends to the first entry")
		md, ok := res.State.MetadataString("envoy.lb", "x-gateway-destination-endpoint")
		require.True(t, ok)
		require.Equal(t, dest, md)
		require.Len(t, res.Received.Headers.Values("X-Gateway-Destination-Endpoint"), 1)
	}
	st := h.MustStats()
	var picks uint64
	for _, a := range sim.Addrs {
		v, _ := st.Counter("endpoint_picker.picks", "pool", "pool", "endpoint", a)
		picks += v
	}
	require.GreaterOrEqual(t, picks, uint64(10))
	lat, ok := st.Histogram("endpoint_picker.pick_duration_us", "pool", "pool")
	require.True(t, ok, st.String())
	require.GreaterOrEqual(t, lat.Count, uint64(10))
	// Gauges follow the pools at most once a second, from a passing stream.
	time.Sleep(1100 * time.Millisecond)
	_, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq(sim.Model, "one more", 1), Cluster: sim.Addrs})
	require.NoError(t, err)
	st = h.MustStats()
	ready, ok := st.Gauge("endpoint_picker.ready_endpoints", "pool", "pool")
	require.True(t, ok, "gauges are published by the streams that pass")
	require.EqualValues(t, 3, ready)
	_, ok = st.Gauge("endpoint_picker.saturated_endpoints", "pool", "pool")
	require.True(t, ok)
}

// An endpoint loaded up to its --max-num-seqs, with a queue behind it, stops
// getting new picks.
func TestPickerAvoidsLoadedEndpoint(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 2,
		Args: []string{"--max-num-seqs", "2", "--inter-token-latency", "100ms"}})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(sim.Addrs, nil)))
	waitPicking(t, h, sim.Model, sim.Addrs)

	busy, idle := sim.Addrs[0], sim.Addrs[1]
	sendDirect(t, busy, sim.Model, 8, 20) // 2 running, 6 waiting, for ~8 s in all
	time.Sleep(400 * time.Millisecond)    // a few scrapes

	before, _ := h.MustStats().Counter("endpoint_picker.picks", "pool", "pool", "endpoint", busy)
	for i := 0; i < 10; i++ {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT,
			Body: chatReq(sim.Model, fmt.Sprintf("while loaded %d", i), 1), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, idle, res.Endpoint)
		require.Equal(t, idle, strings.Split(destination(res), ",")[0])
	}
	after, _ := h.MustStats().Counter("endpoint_picker.picks", "pool", "pool", "endpoint", busy)
	require.Equal(t, before, after, "the loaded endpoint got new picks")
}

// A request for a LoRA adapter goes where that adapter is running.
func TestPickerFollowsRunningLoRA(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 2, Args: []string{
		"--max-loras", "1", "--inter-token-latency", "100ms",
		"--lora-modules", `{"name":"lora-a","path":"/adapters/a"}`, `{"name":"lora-b","path":"/adapters/b"}`}})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(sim.Addrs, nil)))
	waitPicking(t, h, sim.Model, sim.Addrs)

	withLoRA := sim.Addrs[1]
	sendDirect(t, withLoRA, "lora-a", 1, 30) // lora-a runs there for ~3 s
	time.Sleep(600 * time.Millisecond)

	for i := 0; i < 8; i++ {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT,
			Body: chatReq("lora-a", fmt.Sprintf("adapter question %d", i), 1), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
		if res.Endpoint != withLoRA {
			for _, a := range sim.Addrs {
				t.Logf("%s metrics:\n%s", a, loraMetrics(a))
			}
		}
		require.Equal(t, withLoRA, res.Endpoint, "request %d: lora-a should go where it runs (destination %s)", i, destination(res))
	}
}

// A killed server is skipped through the fallback list without a failed
// request, and is picked again once it is back.
func TestPickerSkipsKilledServerAndReturnsToIt(t *testing.T) {
	var sims []*harness.Sim
	var addrs []string
	for i := 0; i < 3; i++ {
		s := harness.StartSim(t, harness.SimOptions{})
		sims = append(sims, s)
		addrs = append(addrs, s.Addrs[0])
	}
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(addrs, map[string]any{"failurePenalty": "1s"})))
	waitPicking(t, h, "sim-model", addrs)

	victim := addrs[0]
	sims[0].Stop()
	walked := 0
	for i := 0; i < 30; i++ {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT,
			Body: chatReq("sim-model", fmt.Sprintf("during outage %d", i), 1), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status, "request %d failed during the outage", i)
		require.NotEqual(t, victim, res.Endpoint)
		if strings.HasPrefix(destination(res), victim) {
			walked++ // Envoy walked the list past the dead first entry
			require.Greater(t, len(res.Attempts), 1)
		}
	}
	t.Logf("%d of 30 requests listed the dead server first and were served by a fallback", walked)
	// Walking past an entry penalizes it: the picker stops listing the dead
	// server first after the first walk (a second may already be in flight).
	require.LessOrEqual(t, walked, 2)

	require.NoError(t, sims[0].Start())
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT,
			Body: chatReq("sim-model", "after recovery", 1), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		if strings.HasPrefix(destination(res), victim) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the recovered server was never picked again")
		time.Sleep(20 * time.Millisecond)
	}
}

// Without ai_router the picker reads the model from the body itself, and a
// body without one is a 400 with an OpenAI-style error.
func TestPickerAloneReadsTheBody(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 2})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", pickerConfig(sim.Addrs, nil)))
	waitPicking(t, h, sim.Model, sim.Addrs)

	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT,
		Chunks:  [][]byte{[]byte(`{"model":"sim-model","messages":[{"role":"user",`), []byte(`"content":"split body"}],"max_tokens":1}`)},
		Cluster: sim.Addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status)
	require.NotEmpty(t, destination(res))

	res, err = h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: []byte(`{"messages":[]}`), Cluster: sim.Addrs})
	require.NoError(t, err)
	require.Equal(t, 400, res.Client.Status)
	require.Contains(t, string(res.Client.Body), `"error"`)
	require.Nil(t, res.Received)
}

func loraMetrics(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "vllm:lora") || strings.HasPrefix(l, "vllm:num_requests") || strings.HasPrefix(l, "vllm:kv") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The subset hint (envoy.lb.subset_hint metadata, left by a filter before
// ours) restricts the pick; a hint that matches nothing is a 503.
func TestPickerHonoursSubsetHint(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 3})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(sim.Addrs, nil)))
	waitPicking(t, h, sim.Model, sim.Addrs)

	hint := func(addrs ...string) []harness.MetadataList {
		return []harness.MetadataList{{Namespace: "envoy.lb.subset_hint", Key: "x-gateway-destination-endpoint-subset", Values: addrs}}
	}
	for _, tc := range []struct {
		name   string
		subset []string
		want   []string // allowed destinations; nil: 503
	}{
		{name: "one endpoint", subset: []string{sim.Addrs[2]}, want: []string{sim.Addrs[2]}},
		{name: "partial match", subset: []string{sim.Addrs[0], "10.9.9.9:80"}, want: []string{sim.Addrs[0]}},
		{name: "two endpoints", subset: []string{sim.Addrs[0], sim.Addrs[1]}, want: []string{sim.Addrs[0], sim.Addrs[1]}},
		{name: "no match", subset: []string{"10.9.9.9:80"}},
		{name: "empty hint", subset: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 4; i++ {
				res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, MetadataLists: hint(tc.subset...),
					Body: chatReq(sim.Model, fmt.Sprintf("subset %s %d", tc.name, i), 1), Cluster: sim.Addrs})
				require.NoError(t, err)
				if tc.want == nil {
					require.Equal(t, 503, res.Client.Status)
					require.Contains(t, string(res.Client.Body), `"error"`)
					require.Nil(t, res.Received)
					continue
				}
				require.Equal(t, 200, res.Client.Status)
				require.ElementsMatch(t, tc.want, strings.Split(destination(res), ","))
				require.Contains(t, tc.want, res.Endpoint)
			}
		})
	}
	v, _ := h.MustStats().Counter("endpoint_picker.no_capacity", "pool", "pool")
	require.EqualValues(t, 8, v)
}
