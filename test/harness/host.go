package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options configure one abihost process.
type Options struct {
	Workers   int    // worker threads (default 2)
	LogLevel  string // trace, debug, info, warn, error, critical, off (default warn)
	Lib       string // the module (default: EnsureBuilt's dist/test/libinferencepool.so)
	LogEvents bool   // forward module log lines to the streams (Stream.Logs)
	// AllowViolations keeps the test going when abihost reports an ABI
	// violation (a callback from a goroutine, continue inside a hook...).
	// By default every violation fails the test.
	AllowViolations bool
	Strict          bool      // abihost aborts at the first violation
	Env             []string  // extra environment (GODEBUG=cgocheck=0 is always set)
	Stderr          io.Writer // also copy abihost's stderr here (ABIHOST_VERBOSE=1: os.Stderr)
	NoGodebug       bool      // do not set GODEBUG=cgocheck=0 (to test the library's guard)
	// NoRetryBuffering models a route without a retry policy: the router
	// does not keep the request body in the stream's buffered body.
	NoRetryBuffering bool
	// BufferLimit is Envoy's buffer limit for a buffered body: over it, a
	// buffering filter chain gets 413 (request) or 500 (response). Default:
	// envoy.yaml's listener per_connection_buffer_limit_bytes, else Envoy's
	// default 1 MiB. -1: no limit.
	BufferLimit int
}

// Host is one running abihost: Envoy's main thread plus worker threads with
// the library loaded. It is safe for concurrent use.
type Host struct {
	t      testing.TB
	opts   Options
	build  Build
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	wmu    sync.Mutex
	bw     *bufio.Writer
	nextID atomic.Uint64
	sid    atomic.Uint64

	mu         sync.Mutex
	pending    map[uint64]chan reply
	streams    map[uint64]*Stream
	dead       error
	done       chan struct{}
	stderr     tailBuffer
	globalLogs []LogLine

	rr        atomic.Uint64 // round robin over cluster hosts (Envoy's fallback LB)
	transport *http.Transport
	client    *http.Client
}

type reply struct {
	ok  bool
	msg string
	raw json.RawMessage
}

// Start runs abihost with the library and registers its shutdown with t.
func Start(t testing.TB, opts Options) *Host {
	t.Helper()
	h, err := StartHost(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// StartHost is Start returning the error instead of failing t.
func StartHost(t testing.TB, opts Options) (*Host, error) {
	b := EnsureBuilt(t)
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.Lib == "" {
		opts.Lib = b.Lib
	}
	if opts.Stderr == nil && os.Getenv("ABIHOST_VERBOSE") == "1" {
		opts.Stderr = os.Stderr
	}
	args := []string{"--lib", opts.Lib, "--workers", strconv.Itoa(opts.Workers), "--log-level", opts.LogLevel}
	if opts.LogEvents {
		args = append(args, "--log-events")
	}
	if opts.Strict {
		args = append(args, "--strict")
	}
	if opts.NoRetryBuffering {
		args = append(args, "--no-retry-buffering")
	}
	if opts.BufferLimit == 0 {
		opts.BufferLimit = envoyBufferLimit(b.Root)
	}
	if opts.BufferLimit < 0 {
		opts.BufferLimit = 0
	}
	args = append(args, "--buffer-limit", strconv.Itoa(opts.BufferLimit))
	cmd := exec.Command(b.Host, args...)
	cmd.Dir = b.Root
	env := os.Environ()
	if !opts.NoGodebug {
		env = append(env, "GODEBUG=cgocheck=0")
	}
	cmd.Env = append(env, opts.Env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h := &Host{t: t, opts: opts, build: b, cmd: cmd, stdin: stdin, bw: bufio.NewWriterSize(stdin, 1<<16),
		pending: map[uint64]chan reply{}, streams: map[uint64]*Stream{}, done: make(chan struct{})}
	var stderrW io.Writer = &h.stderr
	if opts.Stderr != nil {
		stderrW = io.MultiWriter(&h.stderr, opts.Stderr)
	}
	cmd.Stderr = stderrW
	h.transport = &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute}
	h.client = &http.Client{Transport: h.transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting abihost: %w", err)
	}
	ready := make(chan error, 1)
	go h.readLoop(stdout, ready)
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("abihost did not start: %v\n%s", err, h.stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("abihost did not start within 30s\n%s", h.stderr.String())
	}
	t.Cleanup(h.Close)
	return h, nil
}

// envoyBufferLimit is the first listener's per_connection_buffer_limit_bytes
// in envoy.yaml, else Envoy's default (1 MiB).
func envoyBufferLimit(root string) int {
	const envoyDefault = 1 << 20
	doc, err := loadYAML(filepath.Join(root, "envoy.yaml"))
	if err != nil {
		return envoyDefault
	}
	for _, l := range list(field(doc, "static_resources", "listeners")) {
		switch v := field(l, "per_connection_buffer_limit_bytes").(type) {
		case float64:
			return int(v)
		case string:
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		case map[string]any: // {value: N} (UInt32Value)
			if n, ok := v["value"].(float64); ok {
				return int(n)
			}
		}
		break
	}
	return envoyDefault
}

// Close stops abihost (quit, then kill). Registered with t.Cleanup by Start.
func (h *Host) Close() {
	h.mu.Lock()
	dead := h.dead != nil
	h.mu.Unlock()
	if !dead {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = h.call(ctx, "quit")
		cancel()
	}
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	h.transport.CloseIdleConnections()
	if h.t.Failed() {
		h.t.Logf("abihost stderr (tail):\n%s", h.stderr.String())
	}
}

// Logs returns module log lines that belong to no stream (config creation,
// config scheduler callbacks), with Options.LogEvents.
func (h *Host) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LogLine(nil), h.globalLogs...)
}

// Stderr returns what abihost and the module logged so far (the tail).
func (h *Host) Stderr() string { return h.stderr.String() }

// Pid is abihost's process id.
func (h *Host) Pid() int { return h.cmd.Process.Pid }

func (h *Host) readLoop(r io.Reader, ready chan<- error) {
	br := bufio.NewReaderSize(r, 1<<20)
	first := true
	var err error
	for {
		var line []byte
		line, err = br.ReadBytes('\n')
		if len(line) > 0 {
			var m wireMsg
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				h.stderr.Write([]byte("harness: bad line from abihost: " + string(line)))
				continue
			}
			if first {
				first = false
				if m.T == "ready" {
					ready <- nil
					continue
				}
				ready <- fmt.Errorf("%s", m.Msg)
				continue
			}
			h.dispatch(&m, line)
		}
		if err != nil {
			break
		}
	}
	if first {
		ready <- fmt.Errorf("abihost exited: %v", err)
	}
	werr := h.cmd.Wait()
	h.mu.Lock()
	h.dead = fmt.Errorf("abihost exited (%v)", werr)
	for id, ch := range h.pending {
		ch <- reply{msg: h.dead.Error() + "\n" + h.stderr.String()}
		delete(h.pending, id)
	}
	streams := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		streams = append(streams, s)
	}
	h.mu.Unlock()
	for _, s := range streams {
		s.wake()
	}
	close(h.done)
}

type wireMsg struct {
	T       string      `json:"t"`
	ID      uint64      `json:"id"`
	Msg     string      `json:"msg"`
	S       uint64      `json:"s"`
	K       string      `json:"k"`
	EOS     bool        `json:"eos"`
	H       [][2][]byte `json:"h"`
	D       []byte      `json:"d"`
	Status  int         `json:"status"`
	Details string      `json:"details"`
	Who     string      `json:"who"`
	Route   string      `json:"route"`
	Cluster string      `json:"cluster"`
	Reason  string      `json:"reason"`
	Level   string      `json:"level"`
	N       int         `json:"n"`
	Endpt   string      `json:"endpoint"`
	Source  string      `json:"source"`
}

func (h *Host) dispatch(m *wireMsg, line []byte) {
	switch m.T {
	case "ok", "err":
		h.mu.Lock()
		ch := h.pending[m.ID]
		delete(h.pending, m.ID)
		h.mu.Unlock()
		if ch != nil {
			ch <- reply{ok: m.T == "ok", msg: m.Msg, raw: append(json.RawMessage(nil), line...)}
		}
	case "ev":
		h.mu.Lock()
		s := h.streams[m.S]
		h.mu.Unlock()
		if s == nil {
			return
		}
		ev := Event{Kind: EventKind(m.K), EOS: m.EOS, Data: m.D, Status: m.Status, Details: m.Details, Who: m.Who,
			Route: m.Route, Cluster: m.Cluster, Reason: m.Reason, Attempt: m.N, Endpoint: m.Endpt, Source: m.Source,
			At: time.Now()}
		if m.H != nil {
			ev.Headers = make(Headers, len(m.H))
			for i, kv := range m.H {
				ev.Headers[i] = [2]string{string(kv[0]), string(kv[1])}
			}
		}
		s.push(ev)
	case "log":
		ll := LogLine{Level: m.Level, Msg: m.Msg}
		h.mu.Lock()
		s := h.streams[m.S]
		if s == nil {
			h.globalLogs = append(h.globalLogs, ll)
		}
		h.mu.Unlock()
		if s != nil {
			s.pushLog(ll)
		}
	}
}

// call sends one command line and waits for its reply.
func (h *Host) call(ctx context.Context, cmd string, args ...string) (json.RawMessage, error) {
	id := h.nextID.Add(1)
	ch := make(chan reply, 1)
	h.mu.Lock()
	if h.dead != nil {
		err := h.dead
		h.mu.Unlock()
		return nil, err
	}
	h.pending[id] = ch
	h.mu.Unlock()
	var b strings.Builder
	b.WriteString(cmd)
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(id, 10))
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	b.WriteByte('\n')
	h.wmu.Lock()
	_, err := h.bw.WriteString(b.String())
	if err == nil {
		err = h.bw.Flush()
	}
	h.wmu.Unlock()
	if err != nil {
		h.mu.Lock()
		delete(h.pending, id)
		h.mu.Unlock()
		return nil, fmt.Errorf("writing to abihost: %w\n%s", err, h.stderr.String())
	}
	select {
	case r := <-ch:
		if !r.ok {
			return nil, &CommandError{Cmd: cmd, Msg: r.msg}
		}
		return r.raw, nil
	case <-ctx.Done():
		h.mu.Lock()
		delete(h.pending, id)
		h.mu.Unlock()
		return nil, fmt.Errorf("abihost %s: %w", cmd, ctx.Err())
	}
}

// CommandError is abihost refusing a command; for a chain, Msg carries what
// the module logged while rejecting its filter_config.
type CommandError struct {
	Cmd string
	Msg string
}

func (e *CommandError) Error() string { return "abihost " + e.Cmd + ": " + e.Msg }

func b64(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return base64.StdEncoding.EncodeToString(b)
}

func b64s(s string) string { return b64([]byte(s)) }

func headerArgs(h Headers) []string {
	out := make([]string, 0, 1+2*len(h))
	out = append(out, strconv.Itoa(len(h)))
	for _, kv := range h {
		out = append(out, b64s(kv[0]), b64s(kv[1]))
	}
	return out
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// MetricDef is a metric a filter config defined (in Envoy, at config time).
type MetricDef struct {
	Filter string   `json:"filter"`
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	Labels []string `json:"labels"`
}

// Configure creates the filter chain the way Envoy does: one
// on_http_filter_config_new per filter, in order, on the main thread. New
// streams use it; streams already open keep theirs. A rejected filter_config
// returns a *CommandError whose message holds the module's log line.
func (h *Host) Configure(c Chain) ([]MetricDef, error) {
	if len(c) == 0 {
		return nil, errors.New("harness: empty chain")
	}
	args := []string{strconv.Itoa(len(c))}
	for _, f := range c {
		args = append(args, b64s(f.Name), b64(f.Config))
	}
	return h.configure("chain", args)
}

// MustConfigure is Configure failing the test on error.
func (h *Host) MustConfigure(c Chain) []MetricDef {
	h.t.Helper()
	m, err := h.Configure(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// SetLogLevel changes what the module may log (log_enabled).
func (h *Host) SetLogLevel(level string) error {
	l := map[string]string{"trace": "0", "debug": "1", "info": "2", "warn": "3", "error": "4", "critical": "5", "off": "6"}[level]
	if l == "" {
		return fmt.Errorf("harness: unknown log level %q", level)
	}
	_, err := h.call(context.Background(), "loglevel", l)
	return err
}

// tailBuffer keeps the last 1 MiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > 1<<20 {
		keep := b.buf.Bytes()[b.buf.Len()-(1<<19):]
		nb := append([]byte(nil), keep...)
		b.buf.Reset()
		b.buf.Write(nb)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 64<<10 {
		s = "...\n" + s[len(s)-64<<10:]
	}
	return s
}

// configure sends a command that creates filter configs (chain, cluster) and
// returns the metrics they defined.
func (h *Host) configure(cmd string, args []string) ([]MetricDef, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := h.call(ctx, cmd, args...)
	if err != nil {
		return nil, err
	}
	var r struct {
		Metrics []MetricDef `json:"metrics"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return r.Metrics, nil
}
