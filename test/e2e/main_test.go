package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/e2e/envoyrun"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// envoyChoice is how this run starts Envoy; zero when the suite does not run.
var envoyChoice envoyrun.Choice

// TestMain decides once whether the real-Envoy tests run: with ENVOY_E2E=1
// (make test-e2e) or ENVOY_BIN set they must, and no Envoy is a failure
// that names the ways to get one; otherwise they skip (make test), and only
// the checks that need no Envoy run.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("ENVOY_E2E") == "1" || os.Getenv("ENVOY_BIN") != "" {
		c, err := envoyrun.Choose(envoyrun.System(os.Getenv))
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
		fmt.Println("e2e:", c)
		envoyChoice = c
	}
	os.Exit(m.Run())
}

// needEnvoy skips a test that runs Envoy when the suite is not asked for.
func needEnvoy(t *testing.T) {
	t.Helper()
	if envoyChoice.Kind == "" {
		t.Skip("the real-Envoy suite runs with make test-e2e (ENVOY_E2E=1) or ENVOY_BIN set")
	}
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSims starts n simulator ranks (one process) serving sim-model.
func startSims(t *testing.T, n int) []string {
	return startModelSims(t, "sim-model", n)
}

// startModelSims is startSims serving model (any other model name is a 404).
func startModelSims(t *testing.T, model string, n int) []string {
	return harness.StartSim(t, harness.SimOptions{Model: model, DataParallel: n, MaxWaitingQueue: 200,
		Args: []string{"--time-factor-under-load", "1"}, Env: []string{"POD_IP=127.0.0.1"}}).Addrs
}

type envoy struct {
	base, admin string
}

func startEnvoy(t *testing.T, sims []string) *envoy {
	listen, admin := freePort(t), freePort(t)
	return startEnvoyWith(t, listen, admin, envoyConfig(t, listen, admin, sims))
}

// startScenario runs Envoy with sc's bootstrap on free listener and admin
// ports.
func startScenario(t *testing.T, sc scenario) *envoy {
	listen, admin := freePort(t), freePort(t)
	return startEnvoyWith(t, listen, admin, sc.bootstrap(t, listen, admin))
}

// startEnvoyWith runs Envoy with a bootstrap listening on listen, its admin
// on admin, and stops it when the test ends. Everything a bootstrap names
// (its key files, access logs) lives under the test's temporary folders,
// which Docker mounts at the same paths.
func startEnvoyWith(t *testing.T, listen, admin int, config []byte) *envoy {
	needEnvoy(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.WriteFile(cfg, config, 0o644))
	cmd, stop := envoyChoice.Command(envoyrun.Run{
		LibDir: filepath.Join(repoRoot(t), "dist"),
		Mounts: []string{os.TempDir()},
		Name:   fmt.Sprintf("inferencepool-e2e-%d-%d", os.Getpid(), listen),
	}, "-c", cfg, "--log-level", "warn", "--concurrency", "2", "--base-id", fmt.Sprint(listen),
		"--file-flush-interval-msec", "100") // access logs reach their file quickly
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, &logs}, lockedWriter{&mu, &logs}
	require.NoError(t, cmd.Start(), "starting %s", envoyChoice)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stop()
		<-exited
		if t.Failed() {
			mu.Lock()
			t.Logf("envoy (%s) logs:\n%s", envoyChoice, logs.String())
			mu.Unlock()
		}
	})
	e := &envoy{base: fmt.Sprintf("http://127.0.0.1:%d", listen), admin: fmt.Sprintf("http://127.0.0.1:%d", admin)}
	// func-e and Docker may first download Envoy.
	wait := 20 * time.Second
	if envoyChoice.Kind != envoyrun.Binary {
		wait = 5 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		if resp, err := http.Get(e.admin + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e
			}
		}
		select {
		case <-exited:
			t.Fatalf("Envoy exited before it was ready")
		default:
		}
		require.True(t, time.Now().Before(deadline), "Envoy not ready after %s", wait)
		time.Sleep(100 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// request sends method path with body and headers through Envoy and returns
// the response with its whole body.
func request(t *testing.T, e *envoy, method, path, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := tryRequest(e, method, path, body, headers)
	require.NoError(t, err)
	return resp, b
}

// tryRequest is request for goroutines other than the test's (which must
// not stop the test).
func tryRequest(e *envoy, method, path, body string, headers map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if body != "" {
		req.Header.Set("content-type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func chat(t *testing.T, e *envoy, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	return request(t, e, http.MethodPost, "/v1/chat/completions", body, headers)
}

// stats reads Envoy's /stats/prometheus.
func stats(t *testing.T, e *envoy) *harness.PromStats {
	t.Helper()
	resp, err := http.Get(e.admin + "/stats/prometheus")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	st, err := harness.ParsePromStats(resp.Body)
	require.NoError(t, err)
	return st
}

// waitForPicks sends requests until Envoy's stats show the picker naming
// destinations (before its first scrapes it fails open).
func waitForPicks(t *testing.T, e *envoy) {
	t.Helper()
	waitForPoolPicks(t, e, "sim-model", "pool")
}

// waitForPoolPicks is waitForPicks for requests for model, picked in pool.
func waitForPoolPicks(t *testing.T, e *envoy, model, pool string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		chat(t, e, `{"model":"`+model+`","messages":[{"role":"user","content":"warm up"}]}`, nil)
		if n, _ := stats(t, e).Counter("endpoint_picker.picks", "pool", pool); n > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Envoy's stats never showed endpoint_picker.picks for pool %q", pool)
}
