package picker

import (
	"container/heap"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// A discrete-event simulation of model servers, for comparing routing
// policies without the timing noise of `make bench-routing` (real
// simulator processes on a shared 2-core machine, where one run's p90
// moves by 30% or more). It models what llm-d-inference-sim v0.10.2 does
// with the bench's flags: max-num-seqs slots, a FIFO queue, a KV cache of
// blocks of 16 tokens hashed in a chain per model (a LoRA adapter is its
// own model), looked up when a request starts running, held while it
// runs, evicted oldest-unused first; prefill 30 ms + 0.3 ms per uncached
// token; 20 ms per output token; at most max-loras adapters running. The
// pickers are the real ones (Pool.Pick, Result.Done), fed by manual
// samples at each proxy's own scrape times, each with its own index and
// in-flight counts, like benchrouting's four proxies. Time is virtual: a
// 60 s run takes about a second.
//
// With gossipMs the proxies tell each other their requests in flight (the
// -fleetsim table's gossip row; scrape.fleet.gossip).
//
// It is a model: it does not charge the servers' CPU for scrapes, has no
// network, and its tokenizer is the simulator's word splitter. Numbers
// from it guide design; `make bench-routing` is what the goals are
// measured on.
//
//	go test ./picker -run TestFleetSimulation -fleetsim -v
var fleetSim = flag.Bool("fleetsim", false, "TestFleetSimulation: print the table of every mode (1 and 4 proxies, 3 seeds)")
var fleetSimSeeds = flag.Int("fleetsim.seeds", 4, "TestFleetSimulation: seeds per row")
var fleetSimSeconds = flag.Float64("fleetsim.seconds", 120, "TestFleetSimulation: measured virtual seconds per run")
var fleetSimNoBuiltin = flag.Bool("fleetsim.nobuiltin", false, "TestFleetSimulation: only the default and the -fleetsim.modes modes")
var fleetSimGossip = flag.Float64("fleetsim.gossip", 5, "TestFleetSimulation: the gossip row's interval in ms (scrape.fleet.gossip)")
var fleetSimModes = flag.String("fleetsim.modes", "", "TestFleetSimulation: extra modes, name=JSON;name=JSON (merged into the pool config)")

type simConfig struct {
	servers     int
	slots       int
	kvBlocks    int
	blockTokens int
	maxLoRAs    int
	prefillMs   float64
	perTokenMs  float64
	interTokMs  float64
	rate        float64 // requests per second
	warmupS     float64
	measureS    float64
	scrapeMs    float64
	gossipMs    float64 // > 0: the proxies tell each other their requests in flight this often (scrape.fleet.gossip)
	jitter      float64
	seed        uint64
}

func defaultSimConfig() simConfig {
	return simConfig{servers: 8, slots: 6, kvBlocks: 320, blockTokens: 16, maxLoRAs: 2,
		prefillMs: 30, perTokenMs: 0.3, interTokMs: 20, rate: 36, warmupS: 4, measureS: 60,
		scrapeMs: scrapeMsFlag(), jitter: 0.2, seed: 1}
}

// ---------------------------------------------------------------- workload

var simVocabulary = strings.Fields(`the of and to in is was that for on are with as his they be at one have this
from or had by word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look more day
could go come did number sound no most people my over know water than call first who may down side been now find any
new work part take get place made live where after back little only round man year came show every good me give our`)

type simRequest struct {
	id       int
	model    string // base model or adapter
	messages []byte // the chat messages JSON, as the picker sees it
	tokens   []uint32
	out      int
	arrive   float64 // ms
	start    float64
	ttft     float64
	server   int
	proxy    int
	res      *Result
	cached   int
	measured bool
}

type simWorkload struct {
	rng      *rand.Rand
	zipf     *rand.Zipf
	systems  []string
	adapters []string
}

func newSimWorkload(seed uint64) *simWorkload {
	w := &simWorkload{rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	w.zipf = rand.NewZipf(w.rng, 1.1, 1, 23)
	for i := range 24 {
		w.systems = append(w.systems, fmt.Sprintf("You are assistant number %d. ", i)+w.words(340))
	}
	for i := range 6 {
		w.adapters = append(w.adapters, fmt.Sprintf("adapter-%d", i))
	}
	return w
}

func (w *simWorkload) words(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(simVocabulary[w.rng.IntN(len(simVocabulary))])
	}
	return b.String()
}

var simTokenRE = regexp.MustCompile(`(\{|\}|:|,|-|\.|\?|\!|;|@|#|\$|%|\^|&|\*|\(|\)|\+|_|~|/|\\|>|<|\[|\]|=|"|'|\w+)(\s*)`)

func simTokenize(s string) []uint32 {
	toks := simTokenRE.FindAllString(s, -1)
	out := make([]uint32, len(toks))
	for i, t := range toks {
		h := fnv.New32a()
		h.Write([]byte(t))
		out[i] = h.Sum32()
	}
	return out
}

func (w *simWorkload) next(id int) *simRequest {
	system := w.words(80)
	if w.rng.Float64() < 0.8 {
		system = w.systems[w.zipf.Uint64()]
	}
	model := "base"
	if w.rng.Float64() < 0.4 {
		model = w.adapters[w.rng.IntN(len(w.adapters))]
	}
	out := 10 + w.rng.IntN(31)
	if w.rng.Float64() < 0.2 {
		out = 100 + w.rng.IntN(101)
	}
	user := w.words(40 + w.rng.IntN(80))
	msgs, _ := json.Marshal([]map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}})
	return &simRequest{id: id, model: model, messages: msgs, tokens: simTokenize("<s>" + system + "</s><s>" + user + "</s>"), out: out}
}

// ---------------------------------------------------------------- servers

type simBlockKey struct {
	model string
	hash  uint64
}

type simServer struct {
	cfg     *simConfig
	running []*simRequest
	waiting []*simRequest
	used    map[simBlockKey]int     // in use by running requests: refcount
	unused  map[simBlockKey]float64 // cached, not in use: last use time
	blocks  map[int][]simBlockKey   // request id -> its blocks
	loras   map[string]int          // adapters of running requests
}

func newSimServer(cfg *simConfig) *simServer {
	return &simServer{cfg: cfg, used: map[simBlockKey]int{}, unused: map[simBlockKey]float64{},
		blocks: map[int][]simBlockKey{}, loras: map[string]int{}}
}

func (s *simServer) blockKeys(r *simRequest) []simBlockKey {
	bt := s.cfg.blockTokens
	keys := make([]simBlockKey, 0, len(r.tokens)/bt)
	var parent uint64 = 14695981039346656037
	for i := 0; i+bt <= len(r.tokens); i += bt {
		h := parent
		for _, t := range r.tokens[i : i+bt] {
			h ^= uint64(t)
			h *= 1099511628211
		}
		parent = h
		keys = append(keys, simBlockKey{model: r.model, hash: h})
	}
	return keys
}

// tryStart starts r if a slot, its adapter and the KV cache allow; it
// returns the cached tokens.
func (s *simServer) tryStart(r *simRequest, now float64) bool {
	if len(s.running) >= s.cfg.slots {
		return false
	}
	if r.model != "base" && s.loras[r.model] == 0 && len(s.loras) >= s.cfg.maxLoRAs {
		return false
	}
	keys := s.blockKeys(r)
	hits, fresh := 0, 0
	for _, k := range keys {
		if _, ok := s.used[k]; ok {
			hits++
		} else if _, ok := s.unused[k]; ok {
			hits++
		} else {
			fresh++
		}
	}
	inUse := len(s.used)
	moved := 0
	for _, k := range keys {
		if _, ok := s.unused[k]; ok {
			moved++
		}
	}
	if inUse+moved+fresh > s.cfg.kvBlocks {
		return false // the simulator's capacity error; here it waits
	}
	for _, k := range keys {
		if _, ok := s.used[k]; ok {
			s.used[k]++
			continue
		}
		if _, ok := s.unused[k]; ok {
			delete(s.unused, k)
			s.used[k] = 1
			continue
		}
		if len(s.used)+len(s.unused) >= s.cfg.kvBlocks {
			s.evictOldest()
		}
		s.used[k] = 1
	}
	s.blocks[r.id] = keys
	if r.model != "base" {
		s.loras[r.model]++
	}
	r.cached = hits * s.cfg.blockTokens
	r.start = now
	s.running = append(s.running, r)
	return true
}

func (s *simServer) evictOldest() {
	var oldest simBlockKey
	t := math.Inf(1)
	for k, at := range s.unused {
		if at < t || (at == t && k.hash < oldest.hash) {
			oldest, t = k, at
		}
	}
	delete(s.unused, oldest)
}

func (s *simServer) finish(r *simRequest, now float64) {
	for _, k := range s.blocks[r.id] {
		if s.used[k]--; s.used[k] == 0 {
			delete(s.used, k)
			s.unused[k] = now
		}
	}
	delete(s.blocks, r.id)
	if r.model != "base" {
		if s.loras[r.model]--; s.loras[r.model] == 0 {
			delete(s.loras, r.model)
		}
	}
	s.running = slices.DeleteFunc(s.running, func(x *simRequest) bool { return x == r })
}

func (s *simServer) sample() metrics.Sample {
	var running, waiting []string
	for a := range s.loras {
		running = append(running, a)
	}
	seen := map[string]bool{}
	for _, r := range s.waiting {
		if r.model != "base" && s.loras[r.model] == 0 && !seen[r.model] {
			seen[r.model] = true
			waiting = append(waiting, r.model)
		}
	}
	slices.Sort(running)
	slices.Sort(waiting)
	return metrics.Sample{
		Waiting: float64(len(s.waiting)), Running: float64(len(s.running)),
		KVUsage:   float64(len(s.used)) / float64(s.cfg.kvBlocks),
		LoRA:      metrics.NewLoRA(running, waiting, s.cfg.maxLoRAs),
		BlockSize: s.cfg.blockTokens, NumGPUBlocks: s.cfg.kvBlocks,
		PeakRunning: float64(s.cfg.slots),
	}
}

// ---------------------------------------------------------------- events

type simEvent struct {
	at   float64
	seq  int
	kind int // evArrive, evFirstToken, evFinish, evScrape
	req  *simRequest
	p, s int // scrape: proxy, server
}

const (
	evArrive = iota
	evFirstToken
	evFinish
	evScrape
	evGossip
)

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simResult struct {
	done      int
	p50, p90  float64
	hit       float64
	loadCV    float64
	regret    float64 // mean requests more waiting at the chosen server than at the least waiting one
	perServer []int
}

// simRouter chooses a server for r.
var simHook = func([]*Pool) {}

type simRouter func(r *simRequest) int

func runSimulation(t testing.TB, cfg simConfig, proxies int, poolJSON string) simResult {
	servers := make([]*simServer, cfg.servers)
	addrs := make([]string, cfg.servers)
	for i := range servers {
		servers[i] = newSimServer(&cfg)
		addrs[i] = fmt.Sprintf("10.1.0.%d:8000", i+1)
	}
	rng := rand.New(rand.NewPCG(cfg.seed, 77))
	var route simRouter
	var pools []*Pool
	switch poolJSON {
	case "round-robin":
		n := 0
		route = func(*simRequest) int { n++; return (n - 1) % cfg.servers }
	default:
		for range proxies {
			pools = append(pools, openManual(t, staticConfig(addrs, poolJSON)))
		}
		simHook(pools)
		route = func(r *simRequest) int {
			p := pools[r.proxy]
			req := Request{Model: r.model, Prompt: r.messages}
			r.res = &Result{}
			p.Pick(&req, r.res)
			flushPrefixIndex(p)
			if r.res.Status != StatusOK {
				return rng.IntN(cfg.servers)
			}
			ep := r.res.Endpoints()[0]
			return slices.Index(addrs, ep)
		}
	}

	// Picks, samples and the fleet estimate on the virtual clock (ns).
	var clock float64
	prevClock := clockNow
	clockNow = func() int64 { return int64(clock * 1e6) }
	defer func() { clockNow = prevClock }()
	// Tie breaks from the seed too: a run is a function of its config.
	tie := cfg.seed
	prevSeed := cycleSeed
	cycleSeed = func() uint64 { tie += 0x9e3779b97f4a7c15; return tie * 0xbf58476d1ce4e5b9 }
	defer func() { cycleSeed = prevSeed }()

	q := &simQueue{}
	seq := 0
	push := func(e *simEvent) { seq++; e.seq = seq; heap.Push(q, e) }
	end := (cfg.warmupS + cfg.measureS) * 1000
	w := newSimWorkload(cfg.seed)
	at := 0.0
	for id := 0; ; id++ {
		at += rng.ExpFloat64() / cfg.rate * 1000
		if at > end {
			break
		}
		r := w.next(id)
		r.arrive, r.proxy, r.measured = at, id%max(proxies, 1), at >= cfg.warmupS*1000
		push(&simEvent{at: at, kind: evArrive, req: r})
	}
	for p := range pools {
		for s := range servers {
			push(&simEvent{at: rng.Float64() * cfg.scrapeMs, kind: evScrape, p: p, s: s})
		}
	}

	// Gossip as gossipTable keeps it: each receiver holds every sender's
	// last count per server and sets the target's Peers to their sum. No
	// loss and no network delay; rounds jittered ±10%.
	gossipMs := cfg.gossipMs
	var told [][][]int64 // [receiver][server][sender]
	if gossipMs > 0 && len(pools) > 1 {
		told = make([][][]int64, len(pools))
		for r := range told {
			told[r] = make([][]int64, cfg.servers)
			for s := range told[r] {
				told[r][s] = make([]int64, len(pools))
			}
		}
		for p := range pools {
			push(&simEvent{at: rng.Float64() * gossipMs, kind: evGossip, p: p})
		}
	}
	var ttfts []float64
	var regretSum float64
	regretN := 0
	hit, query := 0, 0
	perServer := make([]int, cfg.servers)
	var cvSum float64
	cvN := 0
	nextCV := cfg.warmupS * 1000
	schedule := func(s int, now float64) {
		srv := servers[s]
		for i := 0; i < len(srv.waiting); {
			r := srv.waiting[i]
			if !srv.tryStart(r, now) {
				i++
				continue
			}
			srv.waiting = slices.Delete(srv.waiting, i, i+1)
			prefill := cfg.prefillMs + cfg.perTokenMs*float64(len(r.tokens)-r.cached)
			push(&simEvent{at: now + prefill, kind: evFirstToken, req: r})
			push(&simEvent{at: now + prefill + cfg.interTokMs*float64(r.out-1), kind: evFinish, req: r})
		}
	}
	for q.Len() > 0 {
		e := heap.Pop(q).(*simEvent)
		now := e.at
		clock = now
		for nextCV <= now && nextCV <= end {
			// load spread: CV of requests at each server, every 50 ms
			var sum, sq float64
			for _, s := range servers {
				n := float64(len(s.running) + len(s.waiting))
				sum += n
				sq += n * n
			}
			mean := sum / float64(len(servers))
			if mean > 0 {
				cvSum += math.Sqrt(sq/float64(len(servers))-mean*mean) / mean
				cvN++
			}
			nextCV += 50
		}
		switch e.kind {
		case evArrive:
			r := e.req
			r.server = route(r)
			if r.measured {
				least := len(servers[0].waiting)
				for _, s := range servers {
					least = min(least, len(s.waiting))
				}
				regretSum += float64(len(servers[r.server].waiting) - least)
				regretN++
			}
			servers[r.server].waiting = append(servers[r.server].waiting, r)
			schedule(r.server, now)
		case evFirstToken:
			r := e.req
			r.ttft = now - r.arrive
			if r.measured {
				ttfts = append(ttfts, r.ttft)
				hit += r.cached
				query += len(r.tokens)
				perServer[r.server]++
			}
		case evFinish:
			r := e.req
			servers[r.server].finish(r, now)
			if r.res != nil {
				r.res.Done(OutcomeOK)
			}
			schedule(r.server, now)
		case evGossip:
			if now > end+30000 {
				continue
			}
			for s := range servers {
				v := target(t, pools[e.p], addrs[s]).InFlight()
				for r := range pools {
					if r == e.p {
						continue
					}
					told[r][s][e.p] = v
					var sum int64
					for _, x := range told[r][s] {
						sum += x
					}
					target(t, pools[r], addrs[s]).SetPeers(sum)
				}
			}
			if q.Len() > 0 {
				push(&simEvent{at: now + gossipMs*(0.9+0.2*rng.Float64()), kind: evGossip, p: e.p})
			}
		case evScrape:
			if now > end+30000 {
				continue
			}
			sm := servers[e.s].sample()
			sm.At = clockNow()
			publish(t, pools[e.p], addrs[e.s], sm)
			next := cfg.scrapeMs * (1 - cfg.jitter/2 + cfg.jitter*rng.Float64())
			if q.Len() > 0 { // stop scraping once only scrapes remain
				push(&simEvent{at: now + next, kind: evScrape, p: e.p, s: e.s})
			}
		}
		if q.Len() > 0 && onlyScrapes(*q) {
			break
		}
	}
	slices.Sort(ttfts)
	res := simResult{done: len(ttfts), hit: float64(hit) / float64(max(query, 1)), perServer: perServer}
	if len(ttfts) > 0 {
		res.p50 = ttfts[len(ttfts)/2]
		res.p90 = ttfts[len(ttfts)*9/10]
	}
	if cvN > 0 {
		res.loadCV = cvSum / float64(cvN)
	}
	if regretN > 0 {
		res.regret = regretSum / float64(regretN)
	}
	return res
}

func onlyScrapes(q simQueue) bool {
	for _, e := range q {
		if e.kind != evScrape && e.kind != evGossip {
			return false
		}
	}
	return true
}

// TestFleetSimulation checks, on the simulated servers, that the default
// picker beats round robin by a wide margin, deterministically enough to
// run in `make test`. With -fleetsim it prints every mode's row.
func TestFleetSimulation(t *testing.T) {
	cfg := defaultSimConfig()
	if !*fleetSim {
		cfg.measureS = 20
		rr := runSimulation(t, cfg, 1, "round-robin")
		def := runSimulation(t, cfg, 1, "")
		t.Logf("round robin p90 %.0f ms hit %.1f%%; picker p90 %.0f ms hit %.1f%%", rr.p90, 100*rr.hit, def.p90, 100*def.hit)
		fleet := runSimulation(t, cfg, 4, "")
		t.Logf("four pickers p90 %.0f ms hit %.1f%%", fleet.p90, 100*fleet.hit)
		require.Less(t, def.p90, rr.p90/2, "the picker's p90 TTFT is under half round robin's")
		require.Greater(t, def.hit, rr.hit*1.2, "the picker gets more prefix hits")
		require.Less(t, fleet.p90, rr.p90/2, "so do four independent pickers")
		require.Greater(t, fleet.hit, def.hit*0.8, "four pickers keep most of one's prefix hits")
		return
	}
	modes := [][2]string{
		{"default", ""},
		{"learned", `"prefix":{"mode":"learned"}`},
		{"learned, LRU 31250", `"prefix":{"mode":"learned","lruCapacity":31250}`},
		{"inference-extension", `"prefix":{"mode":"inference-extension"}`},
	}
	if *fleetSimNoBuiltin {
		modes = modes[:1]
	}
	if *fleetSimModes != "" {
		for _, m := range strings.Split(*fleetSimModes, ";") {
			name, js, ok := strings.Cut(m, "=")
			require.True(t, ok, "mode %q: name=JSON", m)
			modes = append(modes, [2]string{name, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(js), "{"), "}")})
		}
	}
	cfg.measureS = *fleetSimSeconds
	fmt.Printf("%d seeds, %.0f s measured each; means over seeds\n", *fleetSimSeeds, cfg.measureS)
	fmt.Println("| routing | TTFT p50 | TTFT p90 | prefix hit | load CV | placement regret | x4/x1 p90 | x4/x1 hits |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	mean := func(k int, pool string) simResult {
		var m simResult
		for seed := uint64(1); seed <= uint64(*fleetSimSeeds); seed++ {
			cfg.seed = seed
			r := runSimulation(t, cfg, k, pool)
			m.p50 += r.p50 / float64(*fleetSimSeeds)
			m.p90 += r.p90 / float64(*fleetSimSeeds)
			m.hit += r.hit / float64(*fleetSimSeeds)
			m.loadCV += r.loadCV / float64(*fleetSimSeeds)
			m.regret += r.regret / float64(*fleetSimSeeds)
		}
		return m
	}
	rr := mean(1, "round-robin")
	fmt.Printf("| round-robin | %.0f ms | %.0f ms | %.1f%% | %.2f | %.2f | | |\n", rr.p50, rr.p90, 100*rr.hit, rr.loadCV, rr.regret)
	for i, m := range modes {
		one, four := mean(1, m[1]), mean(4, m[1])
		fmt.Printf("| picker x1 (%s) | %.0f ms | %.0f ms | %.1f%% | %.2f | %.2f | | |\n", m[0], one.p50, one.p90, 100*one.hit, one.loadCV, one.regret)
		fmt.Printf("| picker x4 (%s) | %.0f ms | %.0f ms | %.1f%% | %.2f | %.2f | %.2f× | %.0f%% |\n", m[0], four.p50, four.p90, 100*four.hit, four.loadCV, four.regret, four.p90/one.p90, 100*four.hit/one.hit)
		if i == 0 && *fleetSimGossip > 0 {
			cfg.gossipMs = *fleetSimGossip
			g := mean(4, m[1])
			cfg.gossipMs = 0
			fmt.Printf("| picker x4 (%s, gossip %g ms) | %.0f ms | %.0f ms | %.1f%% | %.2f | %.2f | %.2f× | %.0f%% |\n", m[0], *fleetSimGossip, g.p50, g.p90, 100*g.hit, g.loadCV, g.regret, g.p90/one.p90, 100*g.hit/one.hit)
		}
	}
}

func scrapeMsFlag() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("FLEETSIM_SCRAPE_MS"), 64); err == nil {
		return v
	}
	return float64(DefaultScrapeInterval) / 1e6
}
