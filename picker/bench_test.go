package picker

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
)

// BenchmarkPick is one full scheduling cycle with the default profile on a
// 4 KiB chat prompt: candidates from the snapshot, saturation filter, the
// four scorers (prefix in learned mode, warm index), max-score picker,
// in-flight bookkeeping and the prefix index update (queued).
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			benchPick(b, n, "")
		})
	}
}

// BenchmarkPickRendezvous is BenchmarkPick with the fleet-consistent prefix
// mode, for comparison.
func BenchmarkPickRendezvous(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			benchPick(b, n, `"prefix":{"mode":"rendezvous"}`)
		})
	}
}

func benchPick(b *testing.B, n int, extra string) {
	eps := addrs(n)
	// Published metrics must stay fresh for the whole run.
	cfg := `"scrape":{"interval":"1h"}`
	if extra != "" {
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
	if p.prefix != nil && p.prefix.Index() != nil {
		p.prefix.Index().Flush()
	}
	req := Request{Model: "adapter-1", Prompt: chatPrompt(systems[3], "What is the capital of France?", 4096)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Pick(&req, &res)
		if res.Status != StatusOK {
			b.Fatalf("status %v", res.Status)
		}
		res.Done(OutcomeOK)
	}
}

// BenchmarkScrapeParse parses the simulator fixture exposition into a Sample.
func BenchmarkScrapeParse(b *testing.B) {
	body, err := os.ReadFile("testdata/vllm_metrics_sim_main.txt")
	if err != nil {
		b.Fatal(err)
	}
	names, _ := metrics.ForEngine(metrics.EngineVLLM)
	parser := metrics.NewParser()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parser.Parse(body, &names); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrapeParseUnfiltered is BenchmarkScrapeParse without dropping
// the unread families first: the whole exposition through expfmt, as a
// plain Prometheus parse would do. For comparison only.
func BenchmarkScrapeParseUnfiltered(b *testing.B) {
	body, err := os.ReadFile("testdata/vllm_metrics_sim_main.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p := expfmt.NewTextParser(model.UTF8Validation)
		if _, err := p.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrefixIndexRecord is the learned index's deferred work per
// request (4 KiB prompt, 64 blocks): what the timer goroutine spends, off the
// pick path, to record where a prompt went.
func BenchmarkPrefixIndexRecord(b *testing.B) {
	x := prefix.NewIndex(31250)
	defer x.Close()
	systems := make([][]uint64, 8)
	for i := range systems {
		prompt := chatPrompt(fmt.Sprintf("tenant %d ", i)+strings.Repeat("Follow the rules. ", 100), "q", 4096)
		systems[i] = prefix.AppendHashes(nil, prefix.ModelHash("m"), prompt[:2048], 64, 256)
	}
	hashes := make([]uint64, 0, 64)
	i := 0
	record := func() {
		// A shared 2 KiB system prompt, then 2 KiB unique to the request,
		// over 10 endpoints.
		hashes = append(hashes[:0], systems[i%8]...)
		for j := range 32 {
			hashes = append(hashes, uint64(i)<<8|uint64(j))
		}
		x.Record(int32(i%10), hashes)
		x.Flush()
		i++
	}
	for range 20000 { // fill every endpoint's LRU: steady state evicts
		record()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		record()
	}
}
