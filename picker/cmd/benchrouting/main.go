// Command benchrouting measures routing quality: it starts N
// llm-d-inference-sim ranks on 127.0.0.1 with a realistic latency model
// (prefill time grows with the prompt tokens not found in the rank's KV
// cache), drives an open-loop Poisson load of shared-prefix chat traffic with
// a few LoRA adapters, and routes every request with one of: round robin,
// random, or the picker (one instance, or K independent instances as K
// proxies would run). For each it prints time to first token, end-to-end
// latency, throughput, 429s and the prefix-cache hit rate the simulators
// themselves report.
//
//	go run ./picker/cmd/benchrouting            # the full comparison, about 4 minutes
//	go run ./picker/cmd/benchrouting -h         # knobs
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type scenario struct {
	name string
	make func(addrs []string) (router, error)
}

func pickerScenario(name string, k int, pool map[string]any, gossip bool) scenario {
	return scenario{name: name, make: func(addrs []string) (router, error) { return newPickers(k, addrs, pool, gossip) }}
}

// gossipName is the name of mode's fleet row with gossip.
func gossipName(mode string) string { return fmt.Sprintf("picker x%d (%s, gossip)", fleet, mode) }

// withGossip adds the first mode's fleet row with scrape.fleet.gossip.
var withGossip = true

// mode is one picker configuration, run as one proxy and as four
// independent ones.
type mode struct {
	name string
	pool map[string]any // merged into the pool config
}

var modes = []mode{
	{name: "default"},
	// The default until 2026-12-05 (fleet issue 10), and before that.
	{name: "learned", pool: map[string]any{"prefix": map[string]any{"mode": "learned"}}},
	{name: "learned, LRU 31250", pool: map[string]any{"prefix": map[string]any{"mode": "learned", "lruCapacity": 31250}}},
	{name: "inference-extension", pool: map[string]any{"prefix": map[string]any{"mode": "inference-extension"}}},
}

// fleet is the number of independent proxies of the fleet rows.
const fleet = 4

func scenarios() []scenario {
	out := []scenario{
		{name: "round-robin", make: func(a []string) (router, error) { return &roundRobin{addrs: a}, nil }},
		{name: "random", make: func(a []string) (router, error) { return &random{addrs: a}, nil }},
	}
	for i, m := range modes {
		out = append(out,
			pickerScenario(fmt.Sprintf("picker x1 (%s)", m.name), 1, m.pool, false),
			pickerScenario(fmt.Sprintf("picker x%d (%s)", fleet, m.name), fleet, m.pool, false))
		if i == 0 && withGossip {
			out = append(out, pickerScenario(gossipName(m.name), fleet, m.pool, true))
		}
	}
	return out
}

// modeFlags adds modes from the command line: -mode 'name={"prefix":{...}}'.
type modeFlags struct{}

func (modeFlags) String() string { return "" }
func (modeFlags) Set(v string) error {
	name, js, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want name=JSON")
	}
	var pool map[string]any
	if err := json.Unmarshal([]byte(js), &pool); err != nil {
		return err
	}
	modes = append(modes, mode{name: name, pool: pool})
	return nil
}

func main() {
	var (
		nSims    = flag.Int("sims", 8, "simulator ranks")
		basePort = flag.Int("base-port", 18100, "first rank's port; ranks use consecutive ports")
		binary   = flag.String("sim", ".bin/llm-d-inference-sim", "llm-d-inference-sim binary")
		rate     = flag.Float64("rate", 36, "mean arrivals per second (Poisson): about 90% of what 8 ranks serve")
		kvBlocks = flag.Int("kv-blocks", 320, "KV cache blocks per rank (16 tokens each): room for about 6 system prompts beside the running requests")
		warmup   = flag.Duration("warmup", 4*time.Second, "load before measuring (caches fill, pickers learn)")
		duration = flag.Duration("duration", 60*time.Second, "measured window per scenario: in 20 s windows the four-proxy ratio swung between 0.99x and 1.41x from run to run (picker/README.md, Round 6)")
		only     = flag.String("only", "", "run only scenarios whose name contains this")
		seed     = flag.Uint64("seed", 1, "workload seed (the same requests for every scenario)")
		extra    = flag.String("pool", "", "JSON object merged into every picker scenario's pool config, e.g. '{\"scheduler\":{\"maxEndpoints\":1}}'")
		out      = flag.String("out", "", "write the output to OUT.txt and the plots to OUT-ttft-cdf.png and OUT-load.png")
		noBase   = flag.Bool("no-builtin-modes", false, "run only round robin, random and the -mode modes")
		gScrape  = flag.String("gossip-scrape", "", "JSON object merged into the gossip row's scrape config, e.g. '{\"interval\":\"100ms\"}'")
		gossip   = flag.Bool("gossip", true, "add a row of the first mode's four proxies telling each other their requests in flight (scrape.fleet.gossip over 127.0.0.1), run in every round")
		rounds   = flag.Int("rounds", 3, "rounds of round robin and of the first mode's one- and four-proxy rows, each on the next workload seed, pooled into their rows: a p90 of one 20 s window swings by a third from run to run, of one 60 s window less")
	)
	builtin := modes
	flag.Var(modeFlags{}, "mode", "add a picker mode, run with 1 and 4 proxies: name=JSON merged into the pool config (repeatable)")
	flag.Parse()
	if *noBase {
		modes = modes[len(builtin):]
	}
	withGossip = *gossip
	if *gScrape != "" {
		if err := json.Unmarshal([]byte(*gScrape), &gossipScrape); err != nil {
			log.Fatalf("-gossip-scrape: %v", err)
		}
	}
	if *out != "" {
		f, err := os.Create(*out + ".txt")
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		stdout = io.MultiWriter(os.Stdout, f)
	}
	if *extra != "" {
		if err := json.Unmarshal([]byte(*extra), &poolOverride); err != nil {
			log.Fatalf("-pool: %v", err)
		}
	}
	if _, err := os.Stat(*binary); err != nil {
		log.Fatalf("%s: %v (build it: cd tools && go build -o ../.bin/llm-d-inference-sim github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim)", *binary, err)
	}
	logDir, err := os.MkdirTemp("", "benchrouting-")
	if err != nil {
		log.Fatal(err)
	}

	cfg := simConfig{
		binary:          *binary,
		model:           "bench-model",
		adapters:        []string{"lora-a", "lora-b", "lora-c", "lora-d", "lora-e", "lora-f"},
		maxNumSeqs:      6,
		maxLoRAs:        2,
		kvCacheBlocks:   *kvBlocks,
		prefillOverhead: 30 * time.Millisecond,
		prefillPerToken: 300 * time.Microsecond,
		interToken:      20 * time.Millisecond,
	}
	printf("%d ranks: max-num-seqs %d, KV cache %d blocks of 16 tokens, prefill %s + %s per uncached token, %s per output token, max-loras %d of %d adapters\n",
		*nSims, cfg.maxNumSeqs, cfg.kvCacheBlocks, cfg.prefillOverhead, cfg.prefillPerToken, cfg.interToken, cfg.maxLoRAs, len(cfg.adapters))
	printf("load: Poisson %.0f req/s, %s warm-up + %s measured per scenario; 80%% of requests share one of 24 system prompts (Zipf 1.1, ~340 words), 40%% name a LoRA adapter, 80%% answer in 10-40 tokens and 20%% in 100-200\n\n",
		*rate, *warmup, *duration)
	printf("| routing | done | 429 | errors | TTFT p50 | TTFT p90 | e2e p90 | req/s | tok/s | prefix hit | load CV | pick CPU/req |\n")
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n")

	var rows, perSeed []result
	for _, job := range plan(scenarios(), *rounds, *seed) {
		if *only != "" && !strings.Contains(job.sc.name, *only) {
			continue
		}
		r, err := run(job.sc, cfg, *basePort, *nSims, *rate, *warmup, *duration, job.seed, logDir)
		if err != nil {
			log.Fatalf("%s: %v", job.sc.name, err)
		}
		r.seeds = []uint64{job.seed}
		if job.rounds > 1 {
			printf("| %s, seed %d | %d | %d | %d | %s | %s | %s | | | %.1f%% | %.2f | |\n", r.name, job.seed, r.done, r.shed, r.errs,
				ms(pct(r.ttft, 0.5)), ms(pct(r.ttft, 0.9)), ms(pct(r.e2e, 0.9)), 100*r.hitRate(), r.load.cv())
		}
		if job.rounds > 1 {
			perSeed = append(perSeed, r)
		}
		rows = pool(rows, r)
		if job.last {
			rows[len(rows)-1].print()
		}
	}
	printf("\n")
	summarize(rows)
	summarizeSeeds(perSeed)
	if *out != "" {
		if err := plotTTFT(rows, *out+"-ttft-cdf.png"); err != nil {
			log.Fatal(err)
		}
		if err := plotLoad(rows, *out+"-load.png"); err != nil {
			log.Fatal(err)
		}
	}
	_ = os.RemoveAll(logDir)
}

type result struct {
	name             string
	seeds            []uint64 // workload seeds pooled into the row
	done, shed, errs int
	ttft, e2e        []time.Duration
	tokens           int
	window           time.Duration
	hits, queries    float64
	perEndpoint      map[string]int
	load             loadSeries
	regret           regret    // the chosen rank's load against the least loaded, at each choice
	cpu              *cpuMeter // the pickers' own CPU; nil for round robin and random
}

func run(sc scenario, cfg simConfig, basePort, nSims int, rate float64, warmup, duration time.Duration, seed uint64, logDir string) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sims, err := startSims(ctx, cfg, basePort, nSims, logDir)
	if err != nil {
		return result{}, err
	}
	defer stopSims(sims)
	var addrs []string
	for _, s := range sims {
		addrs = append(addrs, s.addr)
	}
	rt, err := sc.make(addrs)
	if err != nil {
		return result{}, err
	}
	defer rt.close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 4096, DisableCompression: true}}
	w := newWorkload(seed, 24, 340, cfg.model, cfg.adapters)
	arrivals := rand.New(rand.NewPCG(seed, 7))

	res := result{name: sc.name, perEndpoint: map[string]int{}}
	if m, ok := rt.(*pickers); ok {
		res.cpu = &cpuMeter{}
		m.cpu = res.cpu
	}
	rank := map[string]int{}
	for i, a := range addrs {
		rank[a] = i
	}
	inFlight := make([]atomic.Int64, len(addrs))
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	measureFrom, measureTo := start.Add(warmup), start.Add(warmup+duration)
	var h0, q0 float64
	measuring := false
	next := start
	for seq := uint64(0); ; seq++ {
		next = next.Add(time.Duration(arrivals.ExpFloat64() / rate * float64(time.Second)))
		if next.After(measureTo) {
			break
		}
		time.Sleep(time.Until(next))
		if !measuring && !time.Now().Before(measureFrom) {
			measuring = true
			if h0, q0, err = prefixCounters(sims); err != nil {
				return result{}, err
			}
			go func() {
				defer close(sampled)
				res.load.sample(inFlight, loadSampleEvery, stopSampling)
			}()
		}
		body := w.next()
		counted := measuring
		ep, shed, done := rt.route(seq, body)
		if shed {
			if counted {
				mu.Lock()
				res.shed++
				mu.Unlock()
			}
			continue
		}
		r := rank[ep]
		if counted {
			res.regret.observe(inFlight, r, int64(cfg.maxNumSeqs))
		}
		inFlight[r].Add(1)
		wg.Go(func() {
			o := send(ctx, client, ep, body)
			inFlight[r].Add(-1)
			done(o.failed())
			if !counted {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			res.perEndpoint[ep]++
			switch {
			case o.status == http.StatusTooManyRequests:
				res.shed++
			case o.failed() || o.err != nil:
				res.errs++
			default:
				res.done++
				res.ttft = append(res.ttft, o.ttft)
				res.e2e = append(res.e2e, o.e2e)
				res.tokens += o.tokens
			}
		})
	}
	if measuring {
		close(stopSampling)
		<-sampled
	}
	wg.Wait()
	res.window = duration
	h1, q1, err := prefixCounters(sims)
	if err != nil {
		return result{}, err
	}
	res.hits, res.queries = h1-h0, q1-q0
	return res, nil
}

type outcome struct {
	status    int
	err       error
	ttft, e2e time.Duration
	tokens    int
}

func (o outcome) failed() bool { return o.err != nil || o.status >= 500 }

// send posts a streamed chat completion and times the first content chunk
// and the end of the stream.
func send(ctx context.Context, c *http.Client, endpoint string, body []byte) outcome {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+endpoint+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return o
	}
	r := bufio.NewReaderSize(resp.Body, 16<<10)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && bytes.HasPrefix(line, []byte("data: ")) {
			if o.ttft == 0 && bytes.Contains(line, []byte(`"content":`)) {
				o.ttft = time.Since(t0)
			}
			if bytes.Contains(line, []byte(`"content":`)) {
				o.tokens++
			}
		}
		if err != nil {
			if err != io.EOF {
				o.err = err
			}
			break
		}
	}
	o.e2e = time.Since(t0)
	if o.ttft == 0 && o.err == nil {
		o.err = fmt.Errorf("no content")
	}
	return o
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

func (r result) hitRate() float64 {
	if r.queries == 0 {
		return 0
	}
	return r.hits / r.queries
}

func (r result) print() {
	cpu := "-"
	if r.cpu != nil {
		cpu = fmt.Sprintf("%.1f µs", r.cpu.perCall()/1e3)
	}
	name := r.name
	if len(r.seeds) > 1 {
		name = fmt.Sprintf("%s, %d seeds pooled", r.name, len(r.seeds))
	}
	printf("| %s | %d | %d | %d | %s | %s | %s | %.1f | %.0f | %.1f%% | %.2f | %s |\n",
		name, r.done, r.shed, r.errs, ms(pct(r.ttft, 0.5)), ms(pct(r.ttft, 0.9)), ms(pct(r.e2e, 0.9)),
		float64(r.done)/r.window.Seconds(), float64(r.tokens)/r.window.Seconds(), 100*r.hitRate(), r.load.cv(), cpu)
}

// stdout is where the report goes (also to -out's file).
var stdout io.Writer = os.Stdout

func printf(format string, a ...any) { fmt.Fprintf(stdout, format, a...) }

func summarize(rows []result) {
	byName := map[string]result{}
	for _, r := range rows {
		byName[r.name] = r
	}
	rr, ok := byName["round-robin"]
	if ok {
		for _, r := range rows {
			if strings.HasPrefix(r.name, "picker") {
				printf("%s: TTFT p90 %.2f× round robin's\n", r.name, float64(pct(r.ttft, 0.9))/float64(pct(rr.ttft, 0.9)))
			}
		}
	}
	for _, m := range modes {
		one, ok1 := byName["picker x1 ("+m.name+")"]
		for _, f := range []struct{ row, what string }{
			{fmt.Sprintf("picker x%d (%s)", fleet, m.name), "independent pickers"},
			{gossipName(m.name), "pickers with gossip"},
		} {
			many, okN := byName[f.row]
			if ok1 && okN && one.hitRate() > 0 && len(one.ttft) > 0 {
				printf("%s: %d %s: TTFT p90 %.2f× and prefix hit rate %.0f%% of one picker's\n", m.name, fleet, f.what,
					float64(pct(many.ttft, 0.9))/float64(pct(one.ttft, 0.9)), 100*many.hitRate()/one.hitRate())
			}
		}
	}
	for _, r := range rows {
		var counts []string
		keys := make([]string, 0, len(r.perEndpoint))
		for k := range r.perEndpoint {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			counts = append(counts, fmt.Sprint(r.perEndpoint[k]))
		}
		printf("requests per rank, %s: %s\n", r.name, strings.Join(counts, " "))
		if r.regret.n > 0 {
			printf("placement, %s: %s\n", r.name, r.regret)
		}
	}
}
