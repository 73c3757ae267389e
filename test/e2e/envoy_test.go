// Package e2e runs the library inside a real Envoy v1.39 with envoy.yaml,
// against simulated model servers. It runs when ENVOY_BIN points at an Envoy
// binary (make test-e2e, or make test with ENVOY_BIN set).
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/envoyconfig"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func envoyBin(t *testing.T) string {
	bin := os.Getenv("ENVOY_BIN")
	if bin == "" {
		t.Skip("ENVOY_BIN not set: the real-Envoy suite needs an Envoy v1.39 binary")
	}
	return bin
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSims starts n simulator ranks on consecutive ports from a free base.
func startSims(t *testing.T, n int, extra ...string) []string {
	return startModelSims(t, "sim-model", n, extra...)
}

// startModelSims is startSims serving model (any other model name is a 404).
func startModelSims(t *testing.T, model string, n int, extra ...string) []string {
	root := repoRoot(t)
	bin := filepath.Join(root, ".bin", "llm-d-inference-sim")
	require.FileExists(t, bin, "run make sim first")
	base := freePort(t)
	args := append([]string{"--model", model, "--force-dummy-tokenizer", "--port", fmt.Sprint(base),
		"--data-parallel-size", fmt.Sprint(n), "--max-waiting-queue-length", "200", "--time-factor-under-load", "1"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_IP=127.0.0.1")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var addrs []string
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", base+i)
		waitHTTP(t, "http://"+addr+"/health")
		addrs = append(addrs, addr)
	}
	return addrs
}

func waitHTTP(t *testing.T, url string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", url)
}

// envoyConfig rewrites envoy.yaml for this test: its own listener and admin
// ports, the cluster and the picker pointed at the simulators.
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

type envoy struct {
	base, admin string
}

func startEnvoy(t *testing.T, sims []string) *envoy {
	listen, admin := freePort(t), freePort(t)
	return startEnvoyWith(t, listen, admin, envoyConfig(t, listen, admin, sims))
}

// startEnvoyWith runs Envoy with a bootstrap listening on listen, its admin
// on admin.
func startEnvoyWith(t *testing.T, listen, admin int, config []byte) *envoy {
	bin := envoyBin(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.WriteFile(cfg, config, 0o644))
	cmd := exec.Command(bin, "-c", cfg, "--log-level", "warn", "--concurrency", "2", "--base-id", fmt.Sprint(listen))
	cmd.Env = append(os.Environ(), "GODEBUG=cgocheck=0", "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+filepath.Join(repoRoot(t), "dist"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("envoy logs:\n%s", logs.String())
		}
	})
	e := &envoy{base: fmt.Sprintf("http://127.0.0.1:%d", listen), admin: fmt.Sprintf("http://127.0.0.1:%d", admin)}
	waitHTTP(t, e.admin+"/ready")
	return e
}

func chat(t *testing.T, e *envoy, body string, headers map[string]string) (*http.Response, []byte) {
	req, err := http.NewRequest(http.MethodPost, e.base+"/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestEnvoyServesThroughBothFilters(t *testing.T) {
	envoyBin(t)
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
	envoyBin(t)
	sims := startSims(t, 3)
	e := startEnvoy(t, sims)
	resp, body := chat(t, e, `{"model":`, nil)
	require.Equal(t, 400, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"error"`)
}

func TestEnvoyOverwritesClientDestination(t *testing.T) {
	envoyBin(t)
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

// waitForPicks sends requests until Envoy's stats show the picker naming
// destinations (before its first scrapes it fails open).
func waitForPicks(t *testing.T, e *envoy) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		chat(t, e, `{"model":"sim-model","messages":[{"role":"user","content":"warm up"}]}`, nil)
		resp, err := http.Get(e.admin + "/stats?filter=endpoint_picker")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "endpoint_picker.picks") && !strings.HasSuffix(line, ": 0") {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("Envoy's stats never showed endpoint_picker.picks")
}

// poolsConfig rewrites README.md's one-pool-per-model bootstrap for this
// test: static pools and clusters on the simulators, its own ports, an admin
// listener. The model-b route's cluster holds pool a's server too, so only
// the picker's per-route pool keeps model-b requests off it (that server
// answers another model's request 404).
func poolsConfig(t *testing.T, listen, admin int, a, b string) []byte {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(raw), "<!-- pools-bootstrap:start -->")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "<!-- pools-bootstrap:end -->")
	require.True(t, ok)
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(block), "```yaml"), "```")
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
	envoyBin(t)
	a := startSims(t, 1)[0]
	b := startModelSims(t, "model-b", 1)[0]
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, poolsConfig(t, listen, admin, a, b))
	waitForPicks(t, e)
	for i := 0; i < 10; i++ {
		resp, body := chat(t, e, fmt.Sprintf(`{"model":"model-b","messages":[{"role":"user","content":"to b %d"}]}`, i), nil)
		require.Equal(t, 200, resp.StatusCode, "model-b request %d reached pool a's server: %s", i, body)
		resp, body = chat(t, e, fmt.Sprintf(`{"model":"sim-model","messages":[{"role":"user","content":"to a %d"}]}`, i), nil)
		require.Equal(t, 200, resp.StatusCode, string(body))
	}
}

// The configs the suite hands Envoy load, checked here without Envoy so that
// a README or envoy.yaml change that breaks the rewrites shows up in make
// test, not only where an Envoy binary exists.
func TestE2EConfigsValidate(t *testing.T) {
	sims := []string{"127.0.0.1:18001", "127.0.0.1:18002", "127.0.0.1:18003"}
	for name, tc := range map[string]struct {
		cfg     []byte
		filters []string
	}{
		"envoy.yaml":   {envoyConfig(t, 18080, 18081, sims), []string{"ai_router", "endpoint_picker"}},
		"README pools": {poolsConfig(t, 18080, 18081, sims[0], sims[1]), []string{"ai_router", "endpoint_picker"}},
		"README providers": {providersConfig(t, 18080, 18081, sims[0], "127.0.0.1:18443", keyFile(t)),
			[]string{"ai_router", "endpoint_picker", "ai_upstream", "ai_upstream"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, filters, err := envoyconfig.ValidateYAML(tc.cfg)
			require.NoError(t, err)
			var names []string
			for _, f := range filters {
				names = append(names, f.FilterName)
			}
			require.Equal(t, tc.filters, names)
		})
	}
}
