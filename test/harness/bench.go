package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Recorded is one side of an exchange as abihost's bench mode replays it:
// headers (pseudo-headers included), body frames, trailers.
type Recorded struct {
	Headers  Headers
	Frames   [][]byte
	Trailers Headers
}

// BenchOptions run abihost --bench.
type BenchOptions struct {
	Chain Chain // default: envoy.yaml's chain
	// Clusters and Routes, when set, are installed before the chain's
	// first stream (bench mode's --setup file): a route naming a cluster
	// with upstream filters sends every exchange through one upstream
	// attempt of that cluster, whose filters see the response first.
	Clusters []Cluster
	Routes   []Route
	Request  Recorded // default: ChatRequest4KiB()
	Response Recorded // default: ChatResponseWithUsage()
	N        int      // measured exchanges (default 1000)
	Warmup   int      // exchanges before measuring (default 200)
	Lib      string   // default: EnsureBuilt's library
	// BufferLimit is Envoy's per-connection buffer limit (abihost
	// --buffer-limit); 0 keeps abihost's default, 1 MiB.
	BufferLimit int
	Env         []string
	Dir         string // where to write the recorded files (default t.TempDir())
	// Settle waits this long after the chain is configured, before the
	// warmup: time for the picker's first scrapes.
	Settle time.Duration
}

// BenchResult is what abihost measured per exchange (request and response
// through every filter, stream creation to destroy), in one process with no
// IPC in the loop.
type BenchResult struct {
	N        int     `json:"n"`
	NsPerReq float64 `json:"ns_per_req"` // wall clock
	// ThreadCPUNsPerReq is the bench thread's CPU time (what the hooks and
	// callbacks cost on the worker), robust to a loaded machine.
	ThreadCPUNsPerReq float64 `json:"thread_cpu_ns_per_req"`
	// ProcessCPUNsPerReq adds every other thread of the process (the Go
	// runtime's GC and background work, the module's own goroutines).
	ProcessCPUNsPerReq float64 `json:"process_cpu_ns_per_req"`
	HooksPerReq        float64 `json:"hooks_per_req"`
	CallbacksPerReq    float64 `json:"callbacks_per_req"`
	ABICallsPerReq     float64 `json:"abicalls_per_req"`
	LocalReplies       int     `json:"local_replies"`
	UpstreamOK         int     `json:"upstream_ok"`
	Routed             int     `json:"routed"` // exchanges sent with x-gateway-destination-endpoint
	Incomplete         int     `json:"incomplete"`
	ClientBytes        float64 `json:"client_bytes_per_req"`
	// GoAllocsPerReq is the Go heap allocations per exchange of the whole
	// process (the module's background goroutines too), -1 when the
	// library does not export inferencepool_heap_allocs.
	GoAllocsPerReq float64 `json:"go_allocs_per_req"`
	// GoCCallsPerReq is the calls from Go into C per exchange (each makes
	// one callback or, batched, several), -1 when the library does not
	// export inferencepool_cgo_calls.
	GoCCallsPerReq float64 `json:"go_c_calls_per_req"`
	// InstrPerReq is the instructions the bench thread executed per
	// measured exchange, counted by callgrind with $ABIHOST_CALLGRIND=1
	// (0 otherwise): repeatable to 0.1% where times move by a third.
	InstrPerReq float64            `json:"-"`
	Hooks       map[string]float64 `json:"hooks"`     // per exchange, by hook
	Callbacks   map[string]float64 `json:"callbacks"` // per exchange, by callback
}

// RunBench writes the chain and the recorded exchange to files and runs
// abihost --bench on them.
func RunBench(t testing.TB, o BenchOptions) (*BenchResult, error) {
	b := EnsureBuilt(t)
	if o.Chain == nil {
		o.Chain = EnvoyChain(t)
	}
	if o.Request.Headers == nil {
		o.Request = ChatRequest4KiB()
	}
	if o.Response.Headers == nil {
		o.Response = ChatResponseWithUsage()
	}
	if o.N == 0 {
		o.N = 1000
	}
	if o.Warmup == 0 {
		o.Warmup = 200
	}
	if o.Lib == "" {
		o.Lib = os.Getenv("ABIHOST_LIB")
	}
	if o.Lib == "" {
		o.Lib = ProductionLib(t) // measure what ships, not the test build
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	files, err := WriteBenchFiles(o.Dir, o.Chain, o.Request, o.Response)
	if err != nil {
		return nil, err
	}
	args := []string{"--lib", o.Lib, "--bench", strconv.Itoa(o.N), "--warmup", strconv.Itoa(o.Warmup),
		"--settle-ms", strconv.FormatInt(o.Settle.Milliseconds(), 10),
		"--chain", files[0], "--request", files[1], "--response", files[2]}
	if o.BufferLimit > 0 {
		args = append(args, "--buffer-limit", strconv.Itoa(o.BufferLimit))
	}
	if len(o.Clusters)+len(o.Routes) > 0 {
		setup, err := writeBenchSetup(o.Dir, o.Clusters, o.Routes)
		if err != nil {
			return nil, err
		}
		args = append(args, "--setup", setup)
	}
	cmd := exec.Command(b.Host, args...)
	godebug := "GODEBUG=cgocheck=0"
	counting := os.Getenv("ABIHOST_CALLGRIND") == "1"
	if counting {
		cmd = callgrind(o.Dir, b.Host, args)
		godebug += ",asyncpreemptoff=1" // Go's preemption signals crash callgrind
	}
	cmd.Dir = b.Root
	cmd.Env = append(append(os.Environ(), godebug), o.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("abihost --bench: %v\n%s%s", err, out, stderr.String())
	}
	var r BenchResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return nil, fmt.Errorf("abihost --bench output %q: %v\n%s", out, err, stderr.String())
	}
	if counting {
		if r.InstrPerReq, err = measuredInstructions(o.Dir, r.N); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// callgrind runs abihost under valgrind's callgrind, one profile per
// thread, in dir; abihost dumps the measured exchanges on their own
// (CALLGRIND_DUMP_STATS_AT in main.c).
func callgrind(dir, host string, args []string) *exec.Cmd {
	vg := []string{"--tool=callgrind", "--separate-threads=yes", "--callgrind-out-file=" + filepath.Join(dir, "callgrind.%p")}
	return exec.Command("valgrind", append(append(vg, host), args...)...)
}

// measuredInstructions reads the instructions the bench thread (thread 1:
// bench mode runs every exchange on it) executed in the measured exchanges
// from callgrind's dump in dir, per exchange. Threads of the Go runtime
// and the module's goroutines (background scrapes) are not counted: under
// valgrind they run about fifty times as often per exchange.
func measuredInstructions(dir string, n int) (float64, error) {
	dumps, err := filepath.Glob(filepath.Join(dir, "callgrind.*.1-01"))
	if err != nil || len(dumps) != 1 {
		return 0, fmt.Errorf("callgrind: want one dump of the measured exchanges in %s, found %v (%v)", dir, dumps, err)
	}
	data, err := os.ReadFile(dumps[0])
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "totals: "); ok {
			total, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("callgrind %s: %q: %v", dumps[0], line, err)
			}
			// The next run in dir writes its own. $ABIHOST_CALLGRIND_KEEP
			// names a directory where the dumps stay, for callgrind_annotate.
			if keep := os.Getenv("ABIHOST_CALLGRIND_KEEP"); keep != "" {
				err = os.Rename(dumps[0], filepath.Join(keep, filepath.Base(dumps[0])))
			} else {
				err = os.Remove(dumps[0])
			}
			if err != nil {
				return 0, err
			}
			return total / float64(n), nil
		}
	}
	return 0, fmt.Errorf("callgrind %s: no totals line", dumps[0])
}

// WriteBenchFiles writes the three files abihost --bench reads and returns
// their paths (chain, request, response). Formats: a chain line is
// "<filter_name> <base64 filter_config>"; a request or response line is
// "H <b64 key> <b64 value>", "D <b64 frame>" or "T <b64 key> <b64 value>"
// ("-" is empty).
func WriteBenchFiles(dir string, c Chain, req, resp Recorded) ([]string, error) {
	var cb strings.Builder
	for _, f := range c {
		fmt.Fprintf(&cb, "%s %s\n", f.Name, b64(f.Config))
	}
	paths := []string{filepath.Join(dir, "chain.txt"), filepath.Join(dir, "request.txt"), filepath.Join(dir, "response.txt")}
	for i, content := range []string{cb.String(), recordedText(req), recordedText(resp)} {
		if err := os.WriteFile(paths[i], []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// writeBenchSetup writes bench mode's --setup file: the cluster and routes
// commands (PROTOCOL.md), one a line, clusters first.
func writeBenchSetup(dir string, clusters []Cluster, routes []Route) (string, error) {
	var b strings.Builder
	for i, c := range clusters {
		args, err := clusterArgs(c)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "cluster %d %s\n", i+1, strings.Join(args, " "))
	}
	if len(routes) > 0 {
		fmt.Fprintf(&b, "routes %d %s\n", len(clusters)+1, strings.Join(routesArgs(routes), " "))
	}
	path := filepath.Join(dir, "setup.txt")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

func recordedText(r Recorded) string {
	var b strings.Builder
	for _, kv := range r.Headers {
		fmt.Fprintf(&b, "H %s %s\n", b64s(kv[0]), b64s(kv[1]))
	}
	for _, f := range r.Frames {
		fmt.Fprintf(&b, "D %s\n", b64(f))
	}
	for _, kv := range r.Trailers {
		fmt.Fprintf(&b, "T %s %s\n", b64s(kv[0]), b64s(kv[1]))
	}
	return b.String()
}

// ChatRequest4KiB is a 4 KiB OpenAI chat completion request for model
// sim-model, as a client sends it (one body frame).
func ChatRequest4KiB() Recorded {
	body := ChatBody("sim-model", 4096)
	return Recorded{
		Headers: Headers{{":method", "POST"}, {":path", "/v1/chat/completions"}, {":authority", "localhost:10000"},
			{":scheme", "http"}, {"content-type", "application/json"}, {"content-length", strconv.Itoa(len(body))},
			{"user-agent", "OpenAI/Python 1.54.0"}, {"accept", "application/json"}, {"authorization", "Bearer sk-test"}},
		Frames: [][]byte{body},
	}
}

// ChatBody returns a chat completion request of about size bytes: a system
// prompt and a user message padded with prose.
func ChatBody(model string, size int) []byte {
	const prose = "The quick brown fox jumps over the lazy dog while the inference pool balances requests across servers. "
	mk := func(n int) []byte {
		user := strings.Repeat(prose, n/len(prose)+1)[:n]
		b, _ := json.Marshal(map[string]any{
			"model": model,
			"messages": []map[string]string{
				{"role": "system", "content": "You are a helpful assistant that answers briefly."},
				{"role": "user", "content": user},
			},
			"max_tokens":  64,
			"temperature": 0.2,
		})
		return b
	}
	b := mk(size)
	if d := len(b) - size; d > 0 && d < size {
		b = mk(size - d)
	}
	return b
}

// ChatResponseWithUsage is a non-streamed chat completion answer with
// usage, as llm-d-inference-sim sends it.
func ChatResponseWithUsage() Recorded {
	body := []byte(`{"id":"chatcmpl-5ff891ad-865c-51ce-ae48-5ff351861c37","model":"sim-model","object":"chat.completion",` +
		`"created":1795670606,"usage":{"prompt_tokens":812,"completion_tokens":29,"total_tokens":841,` +
		`"prompt_tokens_details":{"cached_tokens":0}},"choices":[{"index":0,"finish_reason":"stop","message":` +
		`{"role":"assistant","content":"Testing@, #testing 1$ ,2%,3^, [4&*5], 6~, 7-_ + (8 : 9) / \\ < > ."}}]}`)
	return Recorded{
		Headers: Headers{{":status", "200"}, {"content-type", "application/json"}, {"content-length", strconv.Itoa(len(body))},
			{"date", "Thu, 26 Nov 2026 05:23:26 GMT"}, {"server", "fasthttp"}},
		Frames: [][]byte{body},
	}
}
