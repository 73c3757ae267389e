package test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// twoPools is an endpoint_picker filter_config with pools "a" and "b".
func twoPools(a, b []string) map[string]any {
	pool := func(name string, addrs []string) map[string]any {
		return map[string]any{"name": name, "endpoints": map[string]any{"static": addrs},
			"scrape": map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1s"}}
	}
	return map[string]any{"pools": []any{pool("a", a), pool("b", b)}}
}

func poolRoute(name, model, pool string) harness.Route {
	r := harness.Route{Name: name, PerFilter: harness.PerFilterJSON("endpoint_picker", map[string]any{"pool": pool})}
	if model != "" {
		r.Header, r.Value = "x-ai-eg-model", model
	}
	return r
}

// readmePoolsBootstrap is README.md's one-pool-per-model bootstrap.
func readmePoolsBootstrap(t *testing.T) []byte { return readmeBootstrap(t, "pools-bootstrap") }

// readmeBootstrap is the YAML block of README.md between the name's markers.
func readmeBootstrap(t *testing.T, name string) []byte {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- "+name+":start -->")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "<!-- "+name+":end -->")
	require.True(t, ok)
	return []byte(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(block), "```yaml"), "```"))
}

// The AI Gateway's model routing with one InferencePool per model, as
// README.md configures it: ai_router sets x-ai-eg-model and clears the route
// cache, the route that matches it names the pool in endpoint_picker's
// per-route config, and the picker chooses among that pool's endpoints only.
func TestPickerPoolPerRoute(t *testing.T) {
	simA := harness.StartSim(t, harness.SimOptions{DataParallel: 2})
	simB := harness.StartSim(t, harness.SimOptions{Model: "model-b"})
	cluster := append(append([]string(nil), simA.Addrs...), simB.Addrs...)
	h := harness.Start(t, harness.Options{})

	bootstrap := readmePoolsBootstrap(t)
	chain, err := harness.LoadChainYAML("README.md", bootstrap)
	require.NoError(t, err)
	routes, err := harness.LoadRoutesYAML("README.md", bootstrap)
	require.NoError(t, err)
	require.Len(t, routes, 2)
	require.Equal(t, "x-ai-eg-model", routes[0].Header)
	require.Equal(t, simB.Model, routes[0].Value, "the README routes model-b to pool b")
	// The README's pools are DNS names; here they are the simulators. Pool b
	// also lists a dead endpoint: it never has metrics, so it is never
	// picked, and its scrape errors are counted under pool b alone.
	dead := "127.0.0.1:1"
	h.MustConfigure(chain.WithJSON("endpoint_picker", twoPools(simA.Addrs, append([]string{dead}, simB.Addrs...))))
	h.MustConfigureRoutes(routes...)

	send := twoPoolSender(t, h, simA, simB, cluster)

	for i := 0; i < 6; i++ {
		res := send("model-b", fmt.Sprintf("for b %d", i))
		require.Equal(t, 200, res.Client.Status)
		require.Equal(t, simB.Addrs[0], destination(res), "pool b has one endpoint")
		require.Equal(t, simB.Addrs[0], res.Endpoint)
		require.GreaterOrEqual(t, res.State.RouteCacheClears, 1, "ai_router re-routes on the model")

		res = send(simA.Model, fmt.Sprintf("for a %d", i))
		require.Equal(t, 200, res.Client.Status)
		require.ElementsMatch(t, simA.Addrs, strings.Split(destination(res), ","), "pool a's two endpoints")
		require.Contains(t, simA.Addrs, res.Endpoint)
	}
	st := h.MustStats()
	picksB, _ := st.Counter("endpoint_picker.picks", "pool", "b", "endpoint", simB.Addrs[0])
	require.GreaterOrEqual(t, picksB, uint64(6))
	for _, a := range simA.Addrs {
		v, _ := st.Counter("endpoint_picker.picks", "pool", "b", "endpoint", a)
		require.Zero(t, v, "pool b never names pool a's endpoints")
	}

	// Scrape errors reach Envoy from a passing stream, at most once a second.
	time.Sleep(1100 * time.Millisecond)
	send(simA.Model, "publish stats")
	st = h.MustStats()
	errsB, _ := st.Counter("endpoint_picker.scrape_errors", "pool", "b")
	require.Positive(t, errsB, st.String())
	errsA, _ := st.Counter("endpoint_picker.scrape_errors", "pool", "a")
	require.Zero(t, errsA)
	ready, _ := st.Gauge("endpoint_picker.ready_endpoints", "pool", "b")
	require.EqualValues(t, 1, ready)

	// A route naming a pool this filter does not have is a 503 that says so.
	h.MustConfigureRoutes(poolRoute("model-c", "model-c", "c"), poolRoute("default", "", "a"))
	res := send("model-c", "nobody serves this")
	require.Equal(t, 503, res.Client.Status)
	require.Contains(t, string(res.Client.Body), `pool \"c\"`)
	require.Nil(t, res.Received)
}

// twoPoolSender returns a send of chat requests for a model to cluster,
// once pool a (simA's two ranks) and pool b (simB's one) have both been
// picked from: until their first scrapes, fail-open lets Envoy's fallback
// pick.
func twoPoolSender(t *testing.T, h *harness.Host, simA, simB *harness.Sim, cluster []string) func(model, prompt string) *harness.Result {
	t.Helper()
	send := func(model, prompt string) *harness.Result {
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq(model, prompt, 1), Cluster: cluster})
		require.NoError(t, err)
		return res
	}
	require.Eventually(t, func() bool {
		a, b := destination(send(simA.Model, "warm up")), destination(send(simB.Model, "warm up"))
		return strings.Count(a, ",") == 1 && b == simB.Addrs[0]
	}, 15*time.Second, 50*time.Millisecond, "both pools never picked")
	return send
}

// A per-route config the picker cannot use is refused when the route table
// loads, naming the field, and the table in force stays.
func TestPickerPerRouteConfigRejected(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, twoPools([]string{"127.0.0.1:1"}, []string{"127.0.0.1:2"})))
	for _, tc := range []struct {
		name, filter, cfg, want string
	}{
		{name: "ai_router's takes only a pool", filter: "ai_router", cfg: `{"pool":"a","weight":2}`, want: `"weight"`},
		{name: "no pool", cfg: `{}`, want: `"pool" is required`},
		{name: "unknown field", cfg: `{"pool":"a","weight":2}`, want: `"weight"`},
		{name: "wrong type", cfg: `{"pool":3}`, want: `pool`},
		{name: "not an object", cfg: `[]`, want: `endpoint_picker per-route`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filter := cmp.Or(tc.filter, "endpoint_picker")
			err := h.ConfigureRoutes(harness.Route{Name: "r", PerFilter: map[string][]byte{filter: []byte(tc.cfg)}})
			require.Error(t, err)
			require.Contains(t, err.Error(), "per-route config "+filter+" rejected")
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
