// Package harness drives libinferencepool.so through Envoy's dynamic-module
// C ABI from go test: it builds the library and abihost (test/abihost, a C
// program that plays Envoy's side of abi.h), configures the filter chain the
// way envoy.yaml does, sends requests through the filters to real upstreams
// (llm-d-inference-sim) and reports what the upstream and the client got.
//
//	sims := []*harness.Sim{harness.StartSim(t, harness.SimOptions{}), harness.StartSim(t, harness.SimOptions{})}
//	cluster := []string{sims[0].Addrs[0], sims[1].Addrs[0]}
//	h := harness.Start(t, harness.Options{Workers: 2})
//	h.MustConfigure(harness.EnvoyChain(t).WithMerged("endpoint_picker", map[string]any{
//		"pools": []any{map[string]any{"name": "pool", "endpoints": map[string]any{"static": cluster}}}}))
//	res, err := h.Send(ctx, &harness.Request{Body: harness.ChatBody("sim-model", 1024), Cluster: cluster,
//		Headers: harness.Headers{{"content-type", "application/json"}}})
//	// res.Received.Headers (what the simulator got), res.Endpoint, res.Client.Status/Body/Chunks,
//	// res.State.Metadata["envoy.lb"], res.State.Violations; h.MustStats().Counter(name, tag, value...)
//
// Lower level: Host.Open gives a Stream to drive frame by frame
// (RequestHeaders, RequestData, ResponseHeaders...) and read its Events.
// Every ABI violation abihost detects (a callback from a goroutine, continue
// inside the filter's own hook...) fails the test unless
// Options.AllowViolations is set. test/abihost/PROTOCOL.md documents abihost.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const modulePath = "github.com/envoy-inferencepool/envoy-inferencepool"

// Build names what EnsureBuilt produced.
type Build struct {
	Root string // repository root
	// Lib is dist/test/libinferencepool.so, the library built with the
	// test-only build tag (filterconfig.DebugBuildTag), so that a config's
	// "debug" object can drive the panic barrier and the scheduler through
	// the real library. Everything else in it is the production code.
	Lib  string
	Host string // test/abihost/abihost
	// NullLib is dist/libabihostnull.so, a module whose hooks do nothing: a
	// bench run with it measures abihost's own cost per exchange.
	NullLib string
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot finds the repository root (the go.mod of this module) above the
// working directory.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("harness: no go.mod of %s above the working directory", modulePath)
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

var (
	buildMu    sync.Mutex
	builtOnce  = map[string]string{}
	buildError = map[string]error{}
)

// EnsureBuilt builds dist/test/libinferencepool.so (go build
// -buildmode=c-shared -tags inferencepool_debug) and test/abihost/abihost
// (gcc) when they are missing or stale, once per test binary, serialised
// across test binaries with a file lock. A rebuilt file replaces the old one
// by rename only when its bytes changed, so running hosts keep their mapping.
// ABIHOST_SKIP_BUILD=1 uses what exists (after make build and make's test
// library); ABIHOST_LIB points at another library.
func EnsureBuilt(t testing.TB) Build {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := Build{Root: root, Lib: filepath.Join(root, "dist", "test", "libinferencepool.so"), Host: filepath.Join(root, "test", "abihost", "abihost"),
		NullLib: filepath.Join(root, "dist", "libabihostnull.so")}
	if lib := os.Getenv("ABIHOST_LIB"); lib != "" {
		b.Lib = lib
	}
	if os.Getenv("ABIHOST_SKIP_BUILD") == "1" {
		for _, p := range []string{b.Lib, b.Host} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("ABIHOST_SKIP_BUILD=1 but %s is missing (run make build)", p)
			}
		}
		return b
	}
	if os.Getenv("ABIHOST_LIB") == "" {
		if _, err := BuildModule(t, "./module", b.Lib, debugBuildTag); err != nil {
			t.Fatal(err)
		}
	}
	if err := once("abihost", func() (string, error) { return b.Host, buildHost(root, b.Host, b.NullLib) }); err != nil {
		t.Fatal(err)
	}
	return b
}

// debugBuildTag is filterconfig.DebugBuildTag (the harness does not import
// the library's packages).
const debugBuildTag = "inferencepool_debug"

// ProductionLib returns dist/libinferencepool.so, the library make build
// ships (no test-only build tag: a config's "debug" object is refused),
// building it when missing or stale unless ABIHOST_SKIP_BUILD=1.
func ProductionLib(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(root, "dist", "libinferencepool.so")
	if os.Getenv("ABIHOST_SKIP_BUILD") == "1" {
		if _, err := os.Stat(lib); err != nil {
			t.Fatalf("ABIHOST_SKIP_BUILD=1 but %s is missing (run make build)", lib)
		}
		return lib
	}
	if _, err := BuildModule(t, "./module", lib); err != nil {
		t.Fatal(err)
	}
	return lib
}

// BuildModule builds a Go package of this repository (e.g. "./module" or a
// test module) as a c-shared library at out, with the given build tags, once
// per test binary.
func BuildModule(t testing.TB, pkg, out string, tags ...string) (string, error) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	err = once("module:"+pkg+":"+out+":"+strings.Join(tags, ","), func() (string, error) {
		return out, withLock(root, func() error {
			tmp := fmt.Sprintf("%s.tmp%d", out, os.Getpid())
			defer os.Remove(tmp)
			defer os.Remove(strings.TrimSuffix(tmp, ".so") + ".h")
			defer os.Remove(tmp + ".h")
			args := []string{"build", "-buildmode=c-shared", "-trimpath"}
			if len(tags) > 0 {
				args = append(args, "-tags", strings.Join(tags, ","))
			}
			cmd := exec.Command("go", append(args, "-o", tmp, pkg)...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			if outb, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, outb)
			}
			return replaceIfChanged(tmp, out)
		})
	})
	return out, err
}

func once(key string, f func() (string, error)) error {
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, ok := builtOnce[key]; ok {
		return buildError[key]
	}
	v, err := f()
	builtOnce[key] = v
	buildError[key] = err
	return err
}

func withLock(root string, f func() error) error {
	if err := os.MkdirAll(filepath.Join(root, "dist"), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(root, "dist", ".harness-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}

func replaceIfChanged(tmp, out string) error {
	nb, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	if ob, err := os.ReadFile(out); err == nil && bytes.Equal(ob, nb) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// HostSources are abihost's inputs; a newer one makes the binary stale.
var hostSources = []string{"main.c", "fm.c", "callbacks.c", "stats.c", "util.c", "abihost.h", "callbacks.def", "build.sh",
	"nullmodule.c"}

func buildHost(root, out, nullOut string) error {
	return withLock(root, func() error {
		dir := filepath.Join(root, "test", "abihost")
		stale := false
		for _, o := range []string{out, nullOut} {
			st, err := os.Stat(o)
			if err != nil {
				stale = true
				continue
			}
			for _, s := range hostSources {
				if si, err := os.Stat(filepath.Join(dir, s)); err == nil && si.ModTime().After(st.ModTime()) {
					stale = true
				}
			}
		}
		if !stale {
			return nil
		}
		tmp := fmt.Sprintf("%s.tmp%d", out, os.Getpid())
		tmpNull := fmt.Sprintf("%s.tmp%d", nullOut, os.Getpid())
		defer os.Remove(tmp)
		defer os.Remove(tmpNull)
		cmd := exec.Command("sh", filepath.Join(dir, "build.sh"), tmp, tmpNull)
		cmd.Dir = dir
		if outb, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building abihost: %v\n%s", err, outb)
		}
		if err := os.Rename(tmpNull, nullOut); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	})
}
