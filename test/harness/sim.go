package harness

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SimOptions start llm-d-inference-sim (DESIGN.md section 7).
type SimOptions struct {
	Model string // served model (default "sim-model"; always a made-up name)
	// DataParallel runs N ranks in one process on consecutive ports
	// (--data-parallel-size), each an endpoint of its own.
	DataParallel int
	Port         int // first port (default: a free range)
	// MaxWaitingQueue is --max-waiting-queue-length (default 128; small
	// queues drop gauge updates).
	MaxWaitingQueue int
	Args            []string // more flags, e.g. --max-num-seqs 4, --time-to-first-token 50ms
	Env             []string // e.g. POD_IP=127.0.0.1 with --enable-kvcache
	Binary          string   // default .bin/llm-d-inference-sim (built from tools/ if missing)
}

// Sim is a running simulator process with one or more ranks.
type Sim struct {
	Addrs []string // 127.0.0.1:port per rank
	Ports []int
	Model string

	t      testing.TB
	opts   SimOptions
	bin    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   tailBuffer
}

var simBuildMu sync.Mutex

// SimBinary returns the simulator binary, building it into .bin (git-ignored)
// from the tools module when missing (a cold build takes minutes).
func SimBinary(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, ".bin", "llm-d-inference-sim")
	simBuildMu.Lock()
	defer simBuildMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	err = withLock(root, func() error {
		if _, err := os.Stat(bin); err == nil {
			return nil
		}
		cmd := exec.Command("go", "build", "-o", bin, "github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim")
		cmd.Dir = filepath.Join(root, "tools")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("building llm-d-inference-sim: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// StartSim starts the simulator on 127.0.0.1 ports, waits until every rank
// answers /health, and kills it when the test ends.
func StartSim(t testing.TB, opts SimOptions) *Sim {
	t.Helper()
	if opts.Model == "" {
		opts.Model = "sim-model"
	}
	if opts.DataParallel <= 0 {
		opts.DataParallel = 1
	}
	if opts.MaxWaitingQueue == 0 {
		opts.MaxWaitingQueue = 128
	}
	bin := opts.Binary
	if bin == "" {
		bin = SimBinary(t)
	}
	s := &Sim{t: t, opts: opts, bin: bin, Model: opts.Model}
	var lastErr error
	for try := 0; try < 5; try++ {
		base := opts.Port
		if base == 0 {
			var err error
			if base, err = freePortRange(opts.DataParallel); err != nil {
				t.Fatal(err)
			}
		}
		s.Ports, s.Addrs = nil, nil
		for i := 0; i < opts.DataParallel; i++ {
			s.Ports = append(s.Ports, base+i)
			s.Addrs = append(s.Addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		}
		if lastErr = s.Start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if opts.Port != 0 {
			break
		}
	}
	t.Fatalf("starting llm-d-inference-sim: %v\n%s", lastErr, s.Logs())
	return nil
}

// Start (re)starts the simulator on its ports, e.g. after Stop, and waits
// for every rank to be ready.
func (s *Sim) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("simulator already running")
	}
	args := []string{"--port", strconv.Itoa(s.Ports[0]), "--model", s.opts.Model, "--force-dummy-tokenizer",
		"--max-waiting-queue-length", strconv.Itoa(s.opts.MaxWaitingQueue)}
	if s.opts.DataParallel > 1 {
		args = append(args, "--data-parallel-size", strconv.Itoa(s.opts.DataParallel))
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.opts.Env...)
	cmd.Stdout = &s.logs
	cmd.Stderr = &s.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for _, addr := range s.Addrs {
		for {
			select {
			case <-exited:
				s.cmd = nil
				return fmt.Errorf("llm-d-inference-sim exited before %s was ready", addr)
			default:
			}
			resp, err := client.Get("http://" + addr + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				s.stopLocked()
				return fmt.Errorf("llm-d-inference-sim rank %s not ready after 60s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Stop kills the simulator (all ranks) and waits for it to exit.
func (s *Sim) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Sim) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // its own process group
	<-s.exited
	s.cmd = nil
}

// Logs returns the tail of the simulator's output.
func (s *Sim) Logs() string { return s.logs.String() }

// freePortRange finds n consecutive free ports on 127.0.0.1.
func freePortRange(n int) (int, error) {
	for try := 0; try < 200; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for i := 0; i < n && ok; i++ {
			// the simulator listens on all interfaces: check those too
			l2, err := net.Listen("tcp", ":"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports", n)
}
