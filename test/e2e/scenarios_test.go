package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// The ABI suite's scenarios (test/*.go) in a real Envoy, each checking what
// a client and Envoy's /stats/prometheus see. README.md, "The real-Envoy
// suite", lists each beside its ABI-host test.

func chatBody(model, prompt string, maxTokens int, stream bool) string {
	m := map[string]any{"model": model, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": prompt}}}
	if stream {
		m["stream"] = true
		m["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func usageOf(t *testing.T, body []byte) harness.Usage {
	t.Helper()
	u, err := harness.ParseUsage(body)
	require.NoError(t, err)
	return u
}

// openAIErrorCode checks an OpenAI-shaped error body and returns its code.
func openAIErrorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotNil(t, e.Error, string(body))
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.Type)
	return fmt.Sprint(e.Error.Code)
}

func rewrite(from, to string) []any {
	return []any{map[string]any{"model": from, "targets": []any{map[string]any{"model": to}}}}
}

// costsScenario: ai_router's costs (AI Gateway's keys, and CEL on the
// requested model, the route and the backend) in an access log.
func costsScenario(sim, log string) scenario {
	fields := map[string]string{"id": "%REQ(x-e2e-id)%", "code": "%RESPONSE_CODE%"}
	for _, k := range []string{"llm_input_token", "llm_output_token", "llm_total_token", "by_model", "by_route", "by_backend"} {
		fields[k] = "%DYNAMIC_METADATA(io.envoy.ai_gateway:" + k + ")%"
	}
	return scenario{
		router: map[string]any{
			"rewrites": rewrite("alias", "sim-model"),
			"costs": []any{
				map[string]any{"metadataKey": "llm_input_token", "type": "input"},
				map[string]any{"metadataKey": "llm_output_token", "type": "output"},
				map[string]any{"metadataKey": "llm_total_token", "type": "total"},
				map[string]any{"metadataKey": "by_model", "type": "cel", "cel": "model == 'alias' ? 100u : 1u"},
				map[string]any{"metadataKey": "by_route", "type": "cel", "cel": "route_name == 'e2e-route-0' ? 10u : 2u"},
				map[string]any{"metadataKey": "by_backend", "type": "cel", "cel": "backend == '" + sim + "' ? 5u : 3u"},
			},
		},
		pools:      []map[string]any{pool([]string{sim}, nil)},
		accessLog:  &accessLog{path: log, fields: fields},
		routeNames: true,
	}
}

// logLine waits for the access log's line of request id.
func logLine(t *testing.T, path, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		raw, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(raw), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["id"] == id {
				return m
			}
		}
		require.True(t, time.Now().Before(deadline), "no access log line for %s in:\n%s", id, raw)
		time.Sleep(100 * time.Millisecond)
	}
}

// Mirrors TestRouterCELVariables and TestRouterAccountsTokens: the costs
// ai_router leaves in io.envoy.ai_gateway metadata (what Envoy's rate limit
// filter reads) match the usage the client got, for a plain and a streamed
// answer; CEL sees the requested model, Envoy's route name and the served
// endpoint; the GenAI token stats count both.
func TestEnvoyCosts(t *testing.T) {
	needEnvoy(t)
	sim := startSims(t, 1)[0]
	log := filepath.Join(t.TempDir(), "access.log")
	e := startScenario(t, costsScenario(sim, log))
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			id := fmt.Sprintf("costs-%v-%d", stream, time.Now().UnixNano())
			resp, body := chat(t, e, chatBody("alias", "what does it cost", 5, stream), map[string]string{"x-e2e-id": id})
			require.Equal(t, 200, resp.StatusCode, string(body))
			require.Contains(t, string(body), `"model":"alias"`, "the client reads back the model it asked for")
			u := usageOf(t, body)
			require.Positive(t, u.TotalTokens)
			line := logLine(t, log, id)
			require.EqualValues(t, 200, line["code"])
			require.EqualValues(t, u.PromptTokens, line["llm_input_token"], "%v", line)
			require.EqualValues(t, u.CompletionTokens, line["llm_output_token"], "%v", line)
			require.EqualValues(t, u.TotalTokens, line["llm_total_token"], "%v", line)
			require.EqualValues(t, 100, line["by_model"], "model is the requested model, not the rewritten target")
			require.EqualValues(t, 10, line["by_route"], "route_name is the route Envoy chose")
			require.EqualValues(t, 5, line["by_backend"], "backend is the served endpoint")
		})
	}
	n, ok := stats(t, e).HistogramCount("gen_ai.client.token.usage", "gen_ai.original.model", "alias",
		"gen_ai.request.model", "sim-model", "gen_ai.token.type", "input")
	require.True(t, ok, "no gen_ai.client.token.usage for alias")
	require.GreaterOrEqual(t, n, uint64(2))
}

// rewriteScenario: a model rewrite and a passed-through path.
func rewriteScenario(sims []string) scenario {
	return scenario{
		router: map[string]any{"rewrites": rewrite("friendly-name", "sim-model"), "passThroughPaths": []any{"/health"}},
		pools:  []map[string]any{pool(sims, nil)},
	}
}

// Mirrors TestRouterRewritesModel and TestRouterPassThrough: the server
// (which serves only sim-model) answers a request for friendly-name, and
// the client reads back friendly-name, plain and streamed; a passed-through
// path reaches the server unchecked, with the client's x-ai-eg-model
// dropped; any other unknown path is ai_router's 404.
func TestEnvoyRewritesModel(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 2)
	e := startScenario(t, rewriteScenario(sims))
	for _, stream := range []bool{false, true} {
		resp, body := chat(t, e, chatBody("friendly-name", "who are you", 5, stream), nil)
		require.Equal(t, 200, resp.StatusCode, "stream=%v: %s", stream, body)
		require.Contains(t, string(body), `"model":"friendly-name"`)
		require.NotContains(t, string(body), `"model":"sim-model"`)
	}
	resp, body := request(t, e, http.MethodGet, "/health", "", map[string]string{"x-ai-eg-model": "premium"})
	require.Equal(t, 200, resp.StatusCode, "a passed-through path reaches the server: %s", body)
	resp, body = request(t, e, http.MethodGet, "/v1/unknown", "", nil)
	require.Equal(t, 404, resp.StatusCode)
	require.Equal(t, "unknown_url", openAIErrorCode(t, body))

	n, ok := stats(t, e).HistogramCount("gen_ai.server.request.duration", "gen_ai.original.model", "friendly-name",
		"gen_ai.request.model", "sim-model")
	require.True(t, ok)
	require.GreaterOrEqual(t, n, uint64(2))
}

// subsetScenario: a header_to_metadata filter before ours turns the
// x-e2e-subset-hint request header into the subset hint (a string).
func subsetScenario(sims []string) scenario {
	return scenario{pools: []map[string]any{pool(sims, nil)}, subsetHint: true}
}

// Mirrors TestPickerHonoursSubsetHint and TestPickerSubsetHintAsString: the
// hint left in envoy.lb.subset_hint by a filter before ours restricts the
// pick, and Envoy serves from inside it; a hint that matches nothing is a
// 503 with an OpenAI-style body, counted as no_capacity.
func TestEnvoyHonoursSubsetHint(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 3)
	e := startScenario(t, subsetScenario(sims))
	waitForPicks(t, e)
	for _, tc := range []struct {
		name, hint string
		want       []string // the servers allowed to answer; nil: 503
	}{
		{name: "one endpoint", hint: sims[2], want: sims[2:3]},
		{name: "partial match", hint: sims[0] + ",10.9.9.9:80", want: sims[0:1]},
		{name: "two endpoints", hint: sims[0] + ", " + sims[1], want: sims[0:2]},
		{name: "no match", hint: "10.9.9.9:80"},
		{name: "separators only", hint: " , "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 4; i++ {
				resp, body := chat(t, e, chatBody("sim-model", fmt.Sprintf("subset %s %d", tc.name, i), 1, false),
					map[string]string{subsetHintHeader: tc.hint})
				if tc.want == nil {
					require.Equal(t, 503, resp.StatusCode, string(body))
					openAIErrorCode(t, body)
					require.Empty(t, resp.Header.Get(endpointHeader), "no server was reached")
					continue
				}
				require.Equal(t, 200, resp.StatusCode, string(body))
				require.Contains(t, tc.want, resp.Header.Get(endpointHeader))
			}
		})
	}
	v, _ := stats(t, e).Counter("endpoint_picker.no_capacity", "pool", "pool")
	require.EqualValues(t, 8, v)
}

// failoverScenario: a picker that penalizes an endpoint Envoy walked past.
func failoverScenario(servers []string) scenario {
	return scenario{pools: []map[string]any{pool(servers, map[string]any{"failurePenalty": "1s"})}}
}

// Mirrors TestPickerSkipsKilledServerAndReturnsToIt: with one of three
// servers killed, every request is served (Envoy's retries walk the
// picker's list past the dead entry, and the picker stops listing it first),
// and once it is back it is picked again.
func TestEnvoyFailsOverPastKilledServer(t *testing.T) {
	needEnvoy(t)
	var sims []*harness.Sim
	var addrs []string
	for i := 0; i < 3; i++ {
		s := harness.StartSim(t, harness.SimOptions{MaxWaitingQueue: 200, Args: []string{"--time-factor-under-load", "1"}})
		sims = append(sims, s)
		addrs = append(addrs, s.Addrs[0])
	}
	e := startScenario(t, failoverScenario(addrs))
	waitForPicks(t, e)
	retries := func() uint64 {
		v, _ := stats(t, e).Counter("envoy_cluster_upstream_rq_retry", "envoy_cluster_name", "pool")
		return v
	}
	before := retries()

	victim := addrs[0]
	sims[0].Stop()
	for i := 0; i < 30; i++ {
		resp, body := chat(t, e, chatBody("sim-model", fmt.Sprintf("during outage %d", i), 1, false), nil)
		require.Equal(t, 200, resp.StatusCode, "request %d failed during the outage: %s", i, body)
		require.NotEqual(t, victim, resp.Header.Get(endpointHeader))
	}
	walked := retries() - before
	t.Logf("Envoy retried %d times during the outage", walked)
	require.LessOrEqual(t, walked, uint64(2), "walking past an entry penalizes it")

	require.NoError(t, sims[0].Start())
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := chat(t, e, chatBody("sim-model", "after recovery", 1, false), nil)
		require.Equal(t, 200, resp.StatusCode, string(body))
		if resp.Header.Get(endpointHeader) == victim {
			break
		}
		require.True(t, time.Now().Before(deadline), "the recovered server was never picked again")
		time.Sleep(20 * time.Millisecond)
	}
}

// budgetScenario: a local token budget per x-api-key.
func budgetScenario(servers []string, tokens int) scenario {
	return scenario{
		router: map[string]any{"budget": map[string]any{"header": "x-api-key", "tokens": tokens, "window": "1h"}},
		pools:  []map[string]any{pool(servers, nil)},
	}
}

// Mirrors TestRouterRejectsBadRequests ("an exhausted budget gets 429 with
// retry-after"): a spent key gets 429 before reaching a server; another
// key still has its budget.
func TestEnvoyBudgetExhausted(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 1)
	e := startScenario(t, budgetScenario(sims, 1))
	key := func(k string) map[string]string { return map[string]string{"x-api-key": k} }
	resp, body := chat(t, e, chatBody("sim-model", "spend it", 4, false), key("tenant-a"))
	require.Equal(t, 200, resp.StatusCode, string(body))
	resp, body = chat(t, e, chatBody("sim-model", "again", 4, false), key("tenant-a"))
	require.Equal(t, 429, resp.StatusCode, string(body))
	require.NotEmpty(t, resp.Header.Get("retry-after"))
	openAIErrorCode(t, body)
	require.Empty(t, resp.Header.Get(endpointHeader), "a refused request reaches no server")
	resp, body = chat(t, e, chatBody("sim-model", "other tenant", 4, false), key("tenant-b"))
	require.Equal(t, 200, resp.StatusCode, string(body))

	v, _ := stats(t, e).Counter("envoy_http_downstream_rq_xx", "envoy_http_conn_manager_prefix", "inference", "envoy_response_code_class", "4")
	require.GreaterOrEqual(t, v, uint64(1))
}

// Mirrors TestRouterBudgetHoldsUnderConcurrency: 48 concurrent requests of
// one key across Envoy's two workers against a slow upstream that reports
// exactly what each request reserved: the total spent never passes the
// budget, and requests are refused only when it is nearly spent.
func TestEnvoyBudgetHoldsUnderConcurrency(t *testing.T) {
	needEnvoy(t)
	up := harness.StartReservationEcho(t, 150*time.Millisecond)
	const budget, clients = 2000, 48
	e := startScenario(t, budgetScenario([]string{up.Addr}, budget))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var spent, admitted, refused int
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body, err := tryRequest(e, http.MethodPost, "/v1/chat/completions",
				chatBody("m", fmt.Sprintf("request %02d of one tenant", i), 100, false), map[string]string{"x-api-key": "one-tenant"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case 200:
				admitted++
				u, err := harness.ParseUsage(body)
				if err != nil {
					t.Error(err)
					return
				}
				spent += int(u.TotalTokens)
			case 429:
				refused++
			default:
				t.Errorf("status %d: %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	t.Logf("admitted %d, refused %d, spent %d of %d, peak in flight %d", admitted, refused, spent, budget, up.Peak())
	require.LessOrEqual(t, spent, budget, "the budget overshot")
	require.Positive(t, refused)
	require.Greater(t, spent, budget-2*130, "requests are refused only when the budget is (nearly) spent")
}

// failModeScenario: a pool whose servers never have metrics.
func failModeScenario(servers []string, mode string) scenario {
	return scenario{pools: []map[string]any{pool(servers, map[string]any{"failureMode": mode})}}
}

// Mirrors TestPickerSubsetHintWithoutMetricsStaysInside and the picker's
// fail-close unit test: with no metrics at all, fail-open leaves the choice
// to Envoy's fallback policy (the servers answer), fail-close answers 503
// with an OpenAI-style body and no request reaches a server.
func TestEnvoyFailCloseWithoutMetrics(t *testing.T) {
	needEnvoy(t)
	blind := harness.BlindServers(t, 2)
	for _, mode := range []string{"fail-open", "fail-close"} {
		t.Run(mode, func(t *testing.T) {
			e := startScenario(t, failModeScenario(blind, mode))
			for i := 0; i < 6; i++ {
				resp, body := chat(t, e, chatBody("m", fmt.Sprintf("blind %d", i), 1, false), nil)
				if mode == "fail-open" {
					require.Equal(t, 200, resp.StatusCode, string(body))
					require.Contains(t, blind, resp.Header.Get(endpointHeader))
					continue
				}
				require.Equal(t, 503, resp.StatusCode, string(body))
				openAIErrorCode(t, body)
			}
			st := stats(t, e)
			noMetrics, _ := st.Counter("endpoint_picker.no_metrics", "pool", "pool")
			require.GreaterOrEqual(t, noMetrics, uint64(6), "every request found no metrics")
			sent, _ := st.Counter("envoy_cluster_upstream_rq_total", "envoy_cluster_name", "pool")
			if mode == "fail-close" {
				require.Zero(t, sent, "fail-close sends nothing upstream")
			} else {
				require.GreaterOrEqual(t, sent, uint64(6))
			}
		})
	}
}

// gossipKey is the e2e fleets' gossip key (hex).
const gossipKey = "00112233445566778899aabbccddeeff"

// gossipScenario: the pool's picker tells its peers its requests in flight
// (scrape.fleet.gossip) on listen, signed as the shipped fleet's are
// (a key: IPG2 datagrams with their time, checked against replay).
func gossipScenario(servers []string, listen string, peers []string) scenario {
	scrape := map[string]any{}
	for k, v := range fastScrape {
		scrape[k] = v
	}
	scrape["fleet"] = map[string]any{"gossip": map[string]any{"listen": listen, "peers": peers, "key": gossipKey}}
	return scenario{pools: []map[string]any{pool(servers, map[string]any{"scrape": scrape})}}
}

// Mirrors TestPickerGossipCountsThePeersRequests: two Envoys of one fleet
// on the same servers, each naming both as gossip peers, hear each other
// (endpoint_picker.gossip_peers 1, datagrams taken, none refused) while
// they serve.
func TestEnvoyFleetGossip(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 3)
	peers := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	var envoys []*envoy
	for _, self := range peers {
		envoys = append(envoys, startScenario(t, gossipScenario(sims, self, peers)))
	}
	for _, e := range envoys {
		waitForPicks(t, e)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		// Streams pass by to publish the gauges (at most once a second).
		for _, e := range envoys {
			resp, body := chat(t, e, chatBody("sim-model", fmt.Sprintf("fleet %d", i), 1, false), nil)
			require.Equal(t, 200, resp.StatusCode, string(body))
		}
		heard := 0
		for _, e := range envoys {
			st := stats(t, e)
			peers, _ := st.Gauge("endpoint_picker.gossip_peers", "pool", "pool")
			received, _ := st.Counter("endpoint_picker.gossip_received", "pool", "pool")
			refused, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool")
			require.Zero(t, refused, "a peer's datagrams are never refused")
			if peers == 1 && received > 0 {
				heard++
			}
		}
		if heard == len(envoys) {
			return
		}
		require.True(t, time.Now().Before(deadline), "the two Envoys never heard each other")
		time.Sleep(200 * time.Millisecond)
	}
}

// Mirrors TestPickerGossipRefusesPlayback: a keyed Envoy takes its peer's
// signed datagrams while the peer sends them; once the peer is quiet, a
// recording of them, signed ones from the past and unsigned ones, all
// from the peer's address, are refused, each counted under its reason.
func TestEnvoyFleetGossipRefusesPlayback(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 2)
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	self := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e := startScenario(t, gossipScenario(sims, self, []string{peer.LocalAddr().String()}))
	waitForPicks(t, e)
	to, err := net.ResolveUDPAddr("udp", self)
	require.NoError(t, err)
	key, err := hex.DecodeString(gossipKey)
	require.NoError(t, err)
	claim := map[string]uint32{sims[0]: 3}
	passBy := func() { // a stream publishes the pool's stats, at most once a second
		time.Sleep(1100 * time.Millisecond)
		chat(t, e, chatBody("sim-model", "stats", 1, false), nil)
	}

	var tape [][]byte
	for round := uint64(1); round <= 100; round++ {
		d := harness.GossipDatagram(key, 77, round, time.Now().UnixMilli(), claim)
		tape = append(tape, d)
		_, err := peer.WriteToUDP(d, to)
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	passBy()
	st := stats(t, e)
	received, _ := st.Counter("endpoint_picker.gossip_received", "pool", "pool")
	require.Positive(t, received, st.String())

	time.Sleep(400 * time.Millisecond) // the quiet peer is forgotten (250 ms)
	for i, d := range tape[:60] {
		for _, b := range [][]byte{d,
			harness.GossipDatagram(key, 1000+uint64(i), 1, time.Now().Add(-10*time.Second).UnixMilli(), claim),
			harness.GossipDatagram(nil, 2000+uint64(i), 1, 0, claim)} {
			_, err := peer.WriteToUDP(b, to)
			require.NoError(t, err)
		}
		time.Sleep(time.Millisecond)
	}
	passBy()
	st = stats(t, e)
	peers, _ := st.Gauge("endpoint_picker.gossip_peers", "pool", "pool")
	require.Zero(t, peers, "nothing played back brings the peer back")
	for _, reason := range []string{"round", "time", "signature"} {
		n, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool", "reason", reason)
		require.Greater(t, n, uint64(50), "%s: %s", reason, st.String())
	}
}

// probeScenario: the pool probes at every pick (pools[].probe with
// maxAge 0s), also alone (whenAlone): every request stops, waits for its
// probes and resumes from the SDK's scheduler.
func probeScenario(servers []string) scenario {
	return scenario{pools: []map[string]any{pool(servers, map[string]any{
		"probe": map[string]any{"enabled": true, "whenAlone": true, "maxAge": "0s", "timeout": "500ms"},
	})}}
}

// Mirrors TestPickerProbesAtPickTime's resumption: in a real Envoy, a
// request the picker stopped for its probes is resumed from the scheduler
// with its body whole (the simulator answers it with usage), plain and
// streamed, and the probes are counted, none timed out.
func TestEnvoyProbesAtPickTime(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 3)
	e := startScenario(t, probeScenario(sims))
	waitForPicks(t, e)
	for i := range 10 {
		resp, body := chat(t, e, chatBody("sim-model", fmt.Sprintf("probe %d", i), 4, i%2 == 1), nil)
		require.Equal(t, 200, resp.StatusCode, string(body))
		if i%2 == 0 {
			var out struct {
				Usage struct {
					PromptTokens int `json:"prompt_tokens"`
				} `json:"usage"`
			}
			require.NoError(t, json.Unmarshal(body, &out), string(body))
			require.Positive(t, out.Usage.PromptTokens, "the server read the whole prompt")
		} else {
			require.Contains(t, string(body), "data: [DONE]", "the stream came through")
		}
	}
	time.Sleep(1100 * time.Millisecond) // pool stats reach Envoy from a passing stream, at most once a second
	chat(t, e, chatBody("sim-model", "stats", 1, false), nil)
	st := stats(t, e)
	probes, _ := st.Counter("endpoint_picker.probes", "pool", "pool")
	require.GreaterOrEqual(t, probes, uint64(10), st.String())
	timeouts, _ := st.Counter("endpoint_picker.probe_timeouts", "pool", "pool")
	require.Zero(t, timeouts)
}
