package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// simConfig is the latency and capacity model every simulator rank runs.
type simConfig struct {
	binary          string
	model           string
	adapters        []string
	maxNumSeqs      int
	maxLoRAs        int
	kvCacheBlocks   int
	prefillOverhead time.Duration
	prefillPerToken time.Duration
	interToken      time.Duration
}

// sim is one llm-d-inference-sim process, on 127.0.0.1 only as far as we
// are concerned (it listens on all interfaces).
type sim struct {
	addr string
	cmd  *exec.Cmd
}

func startSims(ctx context.Context, cfg simConfig, basePort, n int, logDir string) ([]*sim, error) {
	var sims []*sim
	for i := range n {
		port := basePort + i
		args := []string{
			"--port", strconv.Itoa(port),
			"--model", cfg.model,
			"--force-dummy-tokenizer",
			"--max-num-seqs", strconv.Itoa(cfg.maxNumSeqs),
			"--max-waiting-queue-length", "1000",
			"--max-model-len", "4096",
			"--enable-kvcache",
			"--kv-cache-size", strconv.Itoa(cfg.kvCacheBlocks),
			"--block-size", "16",
			"--prefill-overhead", cfg.prefillOverhead.String(),
			"--prefill-time-per-token", cfg.prefillPerToken.String(),
			"--inter-token-latency", cfg.interToken.String(),
			"--time-factor-under-load", "1",
			"--max-loras", strconv.Itoa(cfg.maxLoRAs),
			"--seed", strconv.Itoa(1000 + i),
			// Each rank publishes KV events to its own (unused) port.
			"--zmq-endpoint", fmt.Sprintf("tcp://127.0.0.1:%d", basePort+1000+i),
			"--lora-modules",
		}
		for _, a := range cfg.adapters {
			args = append(args, fmt.Sprintf(`{"name":%q,"path":"/adapters/%s"}`, a, a))
		}
		cmd := exec.CommandContext(ctx, cfg.binary, args...)
		cmd.Env = append(os.Environ(), "POD_IP=127.0.0.1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		logf, err := os.Create(fmt.Sprintf("%s/sim-%d.log", logDir, port))
		if err != nil {
			stopSims(sims)
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			stopSims(sims)
			return nil, fmt.Errorf("start %s: %w", cfg.binary, err)
		}
		sims = append(sims, &sim{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd})
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range sims {
		for !ready(s.addr) {
			if time.Now().After(deadline) {
				stopSims(sims)
				return nil, fmt.Errorf("simulator %s not ready after 30s (logs in %s)", s.addr, logDir)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return sims, nil
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/v1/models")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func stopSims(sims []*sim) {
	for _, s := range sims {
		if s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, s := range sims {
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
}

// prefixCounters sums the simulators' own prefix-cache counters: tokens
// found in the KV cache and tokens looked up. Both the v0.10.2 names and
// the later _total names are read.
func prefixCounters(sims []*sim) (hits, queries float64, err error) {
	for _, s := range sims {
		resp, err := http.Get("http://" + s.addr + "/metrics")
		if err != nil {
			return 0, 0, err
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			name, rest, ok := strings.Cut(line, "{")
			if !ok {
				name, rest, _ = strings.Cut(line, " ")
			}
			i := strings.LastIndexByte(rest, ' ')
			v, perr := strconv.ParseFloat(rest[i+1:], 64)
			if perr != nil {
				continue
			}
			switch name {
			case "vllm:prefix_cache_hits", "vllm:prefix_cache_hits_total":
				hits += v
			case "vllm:prefix_cache_queries", "vllm:prefix_cache_queries_total":
				queries += v
			}
		}
		resp.Body.Close()
	}
	return hits, queries, nil
}
