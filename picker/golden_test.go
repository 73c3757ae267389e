package picker

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/pick-golden.txt from this build")

const goldenFile = "testdata/pick-golden.txt"

// goldenConfigs are the profiles the replay runs through: every prefix
// mode, the knobs that change affinity, both pickers, no filter, other
// saturation thresholds and block sizes. Penalties and staleness last an
// hour, so a slow run decides the same way as a fast one.
var goldenConfigs = []struct{ name, extra string }{
	{"default", ``},
	{"rendezvous", `"prefix":{"mode":"rendezvous"}`},
	{"inference-extension", `"prefix":{"mode":"inference-extension"}`},
	{"learned-knobs", `"prefix":{"queueSlack":2,"rendezvousFloor":0.4,"loadBound":1.5,"blockSize":32,"rendezvousBlocks":4}`},
	{"weighted-random", `"scheduler":{"scorers":[{"type":"in-flight","weight":1},{"type":"queue","weight":1},{"type":"prefix-cache","weight":2}],"picker":{"type":"weighted-random"},"maxEndpoints":5},"prefix":{"lruCapacity":40}`},
	{"no-filter-rendezvous", `"scheduler":{"filters":[],"scorers":[{"type":"kv-cache-utilization","weight":1},{"type":"lora-affinity","weight":0},{"type":"prefix-cache","weight":1}],"maxEndpoints":1},"prefix":{"mode":"rendezvous","loadBound":2}`},
	{"tight-saturation", `"saturation":{"queue":3,"kvCache":0.5},"failureMode":"fail-close","prefix":{"maxBlocks":16}`},
}

// TestPickMatchesGolden replays a fixed sequence of metrics, requests and
// outcomes through every golden profile and compares each pick (status and
// list, in order) with testdata/pick-golden.txt, recorded from main before
// the pick's passes were fused (see the file's header). Any change to a
// routing decision fails it; a deliberate one regenerates the file with
// -update-golden and says why in the commit.
func TestPickMatchesGolden(t *testing.T) {
	var got bytes.Buffer
	for _, cfg := range goldenConfigs {
		replayGolden(t, cfg.name, cfg.extra, &got)
	}
	if *updateGolden {
		header := "# TestPickMatchesGolden: config step status members (positions in the pool's list), from the build named below\n"
		require.NoError(t, os.WriteFile(goldenFile, append([]byte(header+"# "+os.Getenv("GOLDEN_FROM")+"\n"), got.Bytes()...), 0o644))
		return
	}
	f, err := os.Open(goldenFile)
	require.NoError(t, err)
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "#") {
			want = append(want, sc.Text())
		}
	}
	require.NoError(t, sc.Err())
	gotLines := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
	require.Len(t, gotLines, len(want))
	for i := range want {
		require.Equal(t, want[i], gotLines[i], "line %d", i)
	}
}

// replayGolden runs one profile's replay and writes a line per pick.
func replayGolden(t *testing.T, name, extra string, out *bytes.Buffer) {
	const n = 40
	eps := addrs(n)
	cfg := `"scrape":{"interval":"1h","staleAfter":"1h"},"failurePenalty":"1h","priorities":{"batch":-1,"critical":1}`
	if extra != "" {
		cfg += "," + extra
	}
	p := openManual(t, staticConfig(eps, cfg))
	member := map[string]int{}
	for i, a := range eps {
		member[a] = i
	}

	// The cycles' seeds (tie breaks, weighted draws) follow a fixed sequence.
	seq := uint64(42)
	prev := cycleSeed
	cycleSeed = func() uint64 { seq += 0x9e3779b97f4a7c15; return framework.Mix(seq) }
	defer func() { cycleSeed = prev }()

	rng := rand.New(rand.NewPCG(7, 11))
	adapters := []string{"adapter-0", "adapter-1", "adapter-2", "adapter-3"}
	models := append([]string{"", "base"}, adapters...)
	pickAdapters := func() []string {
		var out []string
		for _, a := range adapters {
			if rng.IntN(3) == 0 {
				out = append(out, a)
			}
		}
		return out
	}
	sample := func() *metrics.Sample {
		s := &metrics.Sample{
			Waiting: float64(rng.IntN(7)),
			Running: float64(rng.IntN(9)),
			KVUsage: float64(rng.IntN(20)) / 20,
			At:      collector.Now(),
		}
		if rng.IntN(2) == 0 {
			s.PeakRunning = float64(4 + rng.IntN(5))
		}
		if rng.IntN(10) < 7 {
			s.LoRA = metrics.NewLoRA(pickAdapters(), pickAdapters(), 1+rng.IntN(4))
		}
		if rng.IntN(2) == 0 {
			s.BlockSize, s.NumGPUBlocks = 16, 8+rng.IntN(64)
		}
		if rng.IntN(10) == 0 {
			s.At -= int64(3 * 3600e9) // stale
		}
		return s
	}
	publishAll := func(from int) {
		for i := from; i < n; i++ {
			tg := target(t, p, eps[i])
			switch r := rng.IntN(12); {
			case r == 0:
				tg.Publish(nil) // unhealthy: no usable metrics
			case r < 5:
				s := sample()
				s.InFlightAtScrape = tg.InFlight()
				tg.Publish(s)
			}
		}
	}
	systems := make([]string, 6)
	for i := range systems {
		systems[i] = fmt.Sprintf("You are assistant %d. ", i) + strings.Repeat("Answer briefly and cite sources. ", 3+i*17)
	}
	words := strings.Fields("the of model cache prefix token server queue what why how when lorem ipsum")
	prompt := func() []byte {
		switch r := rng.IntN(20); {
		case r == 0:
			return nil
		case r == 1:
			return []byte(`[{"role":"user","content":"hi"}]`) // under a block
		case r < 4: // a completion prompt: a plain string
			var b strings.Builder
			b.WriteString(systems[rng.IntN(len(systems))][:100])
			for range rng.IntN(300) {
				b.WriteString(words[rng.IntN(len(words))] + " ")
			}
			return []byte(b.String())
		}
		var user strings.Builder
		for range rng.IntN(120) {
			user.WriteString(words[rng.IntN(len(words))] + " ")
		}
		size := 64 + rng.IntN(6000)
		return chatPrompt(systems[rng.IntN(len(systems))], user.String(), size)
	}

	// Endpoints 0-4 get metrics only later: until then they are no candidates.
	for i := 5; i < n; i++ {
		s := sample()
		s.At = collector.Now()
		target(t, p, eps[i]).Publish(s)
	}
	var open []*Result // in flight, oldest first
	for step := range 400 {
		switch {
		case step == 100:
			publishAll(0)
		case step%10 == 0:
			publishAll(5)
		}
		req := Request{Model: models[rng.IntN(len(models))], Prompt: prompt()}
		switch rng.IntN(8) {
		case 0:
			req.Objective = "batch"
		case 1:
			req.Objective = "critical"
		}
		if rng.IntN(7) == 0 {
			req.HasSubset = true
			for range rng.IntN(6) {
				req.Subset = append(req.Subset, eps[rng.IntN(n)])
			}
			if rng.IntN(4) == 0 {
				req.Subset = append(req.Subset, "192.0.2.1:80") // not a member
			}
		}
		res := &Result{}
		p.Pick(&req, res)
		flushPrefixIndex(p)
		fmt.Fprintf(out, "%s %d %s", name, step, res.Status)
		for i, a := range res.Endpoints() {
			sep := ","
			if i == 0 {
				sep = " "
			}
			fmt.Fprintf(out, "%s%d", sep, member[a])
		}
		out.WriteByte('\n')
		if res.Status == StatusOK {
			open = append(open, res)
		}
		// End some requests: usually the oldest, sometimes after Envoy
		// retried on the next entry, sometimes failed.
		for len(open) > 12 || (len(open) > 0 && rng.IntN(2) == 0) {
			r := open[0]
			open = open[1:]
			if l := r.Endpoints(); len(l) > 1 && rng.IntN(10) == 0 {
				r.Served(l[1])
			}
			outcome := OutcomeOK
			if rng.IntN(12) == 0 {
				outcome = OutcomeFailed
			}
			r.Done(outcome)
		}
	}
	for _, r := range open {
		r.Done(OutcomeOK)
	}
}
