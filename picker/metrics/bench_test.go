package metrics

import (
	"bytes"
	"os"
	"testing"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/promfilter"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// BenchmarkScrapeParse parses the simulator fixture exposition into a Sample.
func BenchmarkScrapeParse(b *testing.B) { benchmarkParse(b, "vllm_metrics_sim_main.txt") }

// BenchmarkScrapeParseVLLM parses the realistic vLLM v0.10.2 exposition
// (every documented family and histogram, python_/process_/http_ families).
func BenchmarkScrapeParseVLLM(b *testing.B) { benchmarkParse(b, "vllm_metrics_v0.10.2_full.txt") }

func benchmarkParse(b *testing.B, fixture string) {
	body, err := os.ReadFile("../testdata/" + fixture)
	if err != nil {
		b.Fatal(err)
	}
	names, _ := ForEngine(EngineVLLM)
	parser := NewParser()
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
	body, err := os.ReadFile("../testdata/vllm_metrics_sim_main.txt")
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

// BenchmarkScrapeParseVLLMFiltered parses what a vLLM server answers to the
// collector's default scrape (?name[]= the families read: 2.2 KB).
func BenchmarkScrapeParseVLLMFiltered(b *testing.B) {
	body, err := os.ReadFile("../testdata/vllm_metrics_v0.10.2_full.txt")
	if err != nil {
		b.Fatal(err)
	}
	names, _ := ForEngine(EngineVLLM)
	body = promfilter.Filter(body, names.Families())
	parser := NewParser()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parser.Parse(body, &names); err != nil {
			b.Fatal(err)
		}
	}
}
