// Package e2e runs the library inside a real Envoy v1.39, against simulated
// model servers and fake providers, with the same scenarios as the ABI-host
// suite in test/ (README.md, "The real-Envoy suite"). It runs with make
// test-e2e (ENVOY_E2E=1), or when ENVOY_BIN is set; Envoy comes from
// ENVOY_BIN, func-e or Docker (test/e2e/envoyrun).
package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// envoyConfig rewrites envoy.yaml for this test: its own listener and admin
// ports, the cluster and the picker pointed at the simulators.
// readmeBlock is README.md's YAML block between <!-- name:start --> and
// <!-- name:end -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(raw), "<!-- "+name+":start -->")
	require.True(t, ok, "README.md lost its %s", name)
	block, _, ok := strings.Cut(rest, "<!-- "+name+":end -->")
	require.True(t, ok, "README.md lost the end of its %s", name)
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(block), "```yaml"), "```")
}

func envoyConfig(t *testing.T, listen, admin int, sims []string) []byte {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "envoy.yaml"))
	require.NoError(t, err)
	s := string(raw)
	s = strings.Replace(s, "port_value: 10000", fmt.Sprintf("port_value: %d", listen), 1)
	s = strings.Replace(s, "port_value: 9901", fmt.Sprintf("port_value: %d", admin), 1)
	for i, port := range []string{"8001", "8002", "8003"} {
		_, p, _ := net.SplitHostPort(sims[i])
		s = strings.ReplaceAll(s, port, p)
	}
	var check any
	require.NoError(t, yaml.Unmarshal([]byte(s), &check))
	return []byte(s)
}

func TestEnvoyServesThroughBothFilters(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 3)
	e := startEnvoy(t, sims)

	resp, body := chat(t, e, `{"model":"sim-model","messages":[{"role":"user","content":"hi"}]}`, nil)
	require.Equal(t, 200, resp.StatusCode, string(body))
	var out struct {
		Model string `json:"model"`
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Equal(t, "sim-model", out.Model)
	require.Positive(t, out.Usage.TotalTokens)
}

func TestEnvoyRejectsInvalidJSON(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 3)
	e := startEnvoy(t, sims)
	resp, body := chat(t, e, `{"model":`, nil)
	require.Equal(t, 400, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"error"`)
	// The ABI suite's TestRouterLongStringsAreScannedExactly, in part: a
	// raw control character deep in a long prompt (the vector scan) is a
	// 400; escaped quotes there, and a model spelled inside, are text.
	long := func(content string) string {
		return `{"messages":[{"role":"user","content":"` + content + `"}],"model":"sim-model"}`
	}
	resp, body = chat(t, e, long(strings.Repeat("a", 200)+"\x01"+strings.Repeat("a", 20)), nil)
	require.Equal(t, 400, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"error"`)
	waitForPicks(t, e)
	resp, body = chat(t, e, long(strings.Repeat(`ab\"`, 100)+`\",\"model\":\"gpt-9`), nil)
	require.Equal(t, 200, resp.StatusCode, string(body))
}

func TestEnvoyOverwritesClientDestination(t *testing.T) {
	needEnvoy(t)
	sims := startSims(t, 3)
	e := startEnvoy(t, sims)
	waitForPicks(t, e)
	// A client naming an address outside the pool must not be obeyed, nor
	// break the request.
	for i := 0; i < 5; i++ {
		resp, body := chat(t, e, `{"model":"sim-model","messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"x-gateway-destination-endpoint": "127.0.0.1:1"})
		require.Equal(t, 200, resp.StatusCode, string(body))
	}
}

// poolsConfig rewrites README.md's one-pool-per-model bootstrap for this
// test: static pools and clusters on the simulators, its own ports, an admin
// listener. The model-b route's cluster holds pool a's server too, so only
// the picker's per-route pool keeps model-b requests off it (that server
// answers another model's request 404).
func poolsConfig(t *testing.T, listen, admin int, a, b string) []byte {
	return readmePoolsConfig(t, "pools-bootstrap", listen, admin, a, b)
}

// readmePoolsConfig is poolsConfig for the README block between the name's
// markers (pools-bootstrap, or onefilter-bootstrap: the same pools and
// clusters with ai_router alone).
func readmePoolsConfig(t *testing.T, block string, listen, admin int, a, b string) []byte {
	s := readmeBlock(t, block)
	sock := func(addr string) string {
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}", host, port)
	}
	for _, r := range []struct{ old, new string }{
		{"port_value: 10000", fmt.Sprintf("port_value: %d", listen)},
		{"address: 0.0.0.0", "address: 127.0.0.1"},
		{"{dns: {name: pool-a.inference.svc.cluster.local, ports: [8000]}}", fmt.Sprintf("{static: [%q]}", a)},
		{"{dns: {name: pool-b.inference.svc.cluster.local, ports: [8000]}}", fmt.Sprintf("{static: [%q]}", b)},
		{"[{endpoint: {address: {socket_address: {address: pool-a.inference.svc.cluster.local, port_value: 8000}}}}]", "[" + sock(a) + "]"},
		{"[{endpoint: {address: {socket_address: {address: pool-b.inference.svc.cluster.local, port_value: 8000}}}}]", "[" + sock(b) + ", " + sock(a) + "]"},
	} {
		require.Contains(t, s, r.old, "README.md's pools bootstrap changed; update this test")
		s = strings.Replace(s, r.old, r.new, 1)
	}
	s = strings.ReplaceAll(s, "type: STRICT_DNS", "type: STATIC")
	s += fmt.Sprintf("admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: %d}\n", admin)
	var check any
	require.NoError(t, yaml.Unmarshal([]byte(s), &check))
	return []byte(s)
}

// README.md's one-pool-per-model setup in a real Envoy: a route matching
// x-ai-eg-model (set by ai_router) names pool b in endpoint_picker's
// per-route config, and model-b requests are only ever sent to pool b.
func TestEnvoyRoutesModelToItsPool(t *testing.T) {
	for _, block := range []string{"pools-bootstrap", "onefilter-bootstrap"} {
		t.Run(block, func(t *testing.T) { routesModelToItsPool(t, block) })
	}
}

// routesModelToItsPool runs TestEnvoyRoutesModelToItsPool on a README
// bootstrap: the two-filter chain, or ai_router picking too (its
// endpointPicker and per-route config; TestRouterPicksREADMEBootstrap).
func routesModelToItsPool(t *testing.T, block string) {
	needEnvoy(t)
	a := startSims(t, 1)[0]
	b := startModelSims(t, "model-b", 1)[0]
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, readmePoolsConfig(t, block, listen, admin, a, b))
	// Until a pool's first scrape it fails open and Envoy's round robin
	// picks, which may send model-b to pool a's server.
	waitForPoolPicks(t, e, "sim-model", "a")
	waitForPoolPicks(t, e, "model-b", "b")
	before, _ := stats(t, e).Counter("endpoint_picker.picks", "pool", "b", "endpoint", b)
	for i := 0; i < 10; i++ {
		resp, body := chat(t, e, fmt.Sprintf(`{"model":"model-b","messages":[{"role":"user","content":"to b %d"}]}`, i), nil)
		require.Equal(t, 200, resp.StatusCode, "model-b request %d reached pool a's server: %s", i, body)
		resp, body = chat(t, e, fmt.Sprintf(`{"model":"sim-model","messages":[{"role":"user","content":"to a %d"}]}`, i), nil)
		require.Equal(t, 200, resp.StatusCode, string(body))
	}
	// Mirrors TestPickerPoolPerRoute's stats: pool b named its own server
	// for each model-b request and never pool a's.
	st := stats(t, e)
	after, _ := st.Counter("endpoint_picker.picks", "pool", "b", "endpoint", b)
	require.GreaterOrEqual(t, after-before, uint64(10))
	wrong, _ := st.Counter("endpoint_picker.picks", "pool", "b", "endpoint", a)
	require.Zero(t, wrong, "pool b never names pool a's server")
	picksA, _ := st.Counter("endpoint_picker.picks", "pool", "a", "endpoint", a)
	require.GreaterOrEqual(t, picksA, uint64(10))
}
