package picker

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// BenchmarkPick is one full scheduling cycle with the default profile on a
// 4 KiB chat prompt: candidates from the snapshot, saturation filter, the
// four scorers (prefix in rendezvous mode, the default since issue 10),
// max-score picker and in-flight bookkeeping.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			benchPick(b, n, "")
		})
	}
}

// BenchmarkPickLearned is BenchmarkPick with the learned prefix index (the
// default before issue 10; warm index, its update queued), for comparison.
func BenchmarkPickLearned(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			benchPick(b, n, `"prefix":{"mode":"learned"}`)
		})
	}
}

// BenchmarkPickFleet is BenchmarkPick for one of four proxies
// (scrape.fleet.proxies 4): every candidate carries the other proxies'
// estimated requests, so the prefix scorer judges affinity on
// Cycle.OwnQueues, one more pass over the candidates.
func BenchmarkPickFleet(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			benchPick(b, n, `"scrape":{"interval":"1h","fleet":{"proxies":4}}`)
		})
	}
}

// BenchmarkPickProbing is BenchmarkPick with pick-time probing on
// (pools[].probe): each request makes the dry pick that chooses what to
// probe, then the pick (the collector here is manual, so nothing is
// scraped: the dry pick's cost alone is added).
func BenchmarkPickProbing(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			benchPick(b, n, `"probe":{"enabled":true,"whenAlone":true}`)
		})
	}
}

func benchPick(b *testing.B, n int, extra string) {
	eps := addrs(n)
	// Published metrics must stay fresh for the whole run.
	cfg := `"scrape":{"interval":"1h"}`
	if strings.HasPrefix(extra, `"scrape":`) {
		cfg = extra // its own scrape section, as fresh
	} else if extra != "" {
		cfg += "," + extra
	}
	p := openManual(b, staticConfig(eps, cfg))
	for i, a := range eps {
		publish(b, p, a, metrics.Sample{
			Waiting: float64(i % 4),
			Running: float64(i % 7),
			KVUsage: float64(i%10) / 20,
			LoRA:    metrics.NewLoRA([]string{"adapter-" + fmt.Sprint(i%5)}, nil, 4),
		})
	}
	systems := make([]string, 8)
	for i := range systems {
		systems[i] = fmt.Sprintf("You are assistant %d. ", i) + strings.Repeat("Follow the house rules carefully. ", 60)
	}
	// Warm the learned index with traffic of every tenant.
	var res Result
	for i := range 4 * n {
		req := Request{Model: "adapter-1", Prompt: chatPrompt(systems[i%len(systems)], fmt.Sprint("warm-up ", i), 4096)}
		p.Pick(&req, &res)
		res.Done(OutcomeOK)
	}
	flushPrefixIndex(p)
	req := Request{Model: "adapter-1", Prompt: chatPrompt(systems[3], "What is the capital of France?", 4096)}
	b.ReportAllocs()
	// The pick's own CPU per op, without the index writer's and without
	// the time other processes held the core (see threadCPU).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := threadCPU()
	probing := strings.Contains(extra, `"probe"`)
	for b.Loop() {
		if probing {
			if n, _ := p.Probe(&req, func() {}); n != 0 {
				b.Fatal("a manual collector probed")
			}
		}
		p.Pick(&req, &res)
		if res.Status != StatusOK {
			b.Fatalf("status %v", res.Status)
		}
		res.Done(OutcomeOK)
	}
	b.ReportMetric(float64(threadCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
