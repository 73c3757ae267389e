package metrics

import (
	"bytes"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FuzzParseMetrics feeds expositions to the scrape parser: it must never
// panic, must only accept usable numbers, and must agree with a plain
// Prometheus parse of the whole exposition whenever that succeeds (the
// parser drops the families it does not read before parsing).
func FuzzParseMetrics(f *testing.F) {
	for _, name := range []string{"vllm_metrics_sim_main.txt", "vllm_metrics_sim_v0.10.2.txt"} {
		body, err := os.ReadFile("../testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(excerpt(body))
	}
	f.Add([]byte("vllm:num_requests_waiting 1\nvllm:num_requests_running 2\nvllm:kv_cache_usage_perc 0.5\n"))
	f.Add([]byte("# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine=\"0\"} 1\nvllm:num_requests_waiting{engine=\"1\"} NaN\n"))
	f.Add([]byte(`{"vllm:num_requests_waiting",a="b"} 1` + "\n"))
	f.Add([]byte(`vllm:lora_requests_info{max_lora="1",running_lora_adapters="a,b",waiting_lora_adapters=""} 1.7e9` + "\n"))

	names, _ := ForEngine(EngineVLLM)
	parser := NewParser()
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := parser.Parse(body, &names)
		if err != nil {
			return
		}
		for _, v := range []float64{s.Waiting, s.Running, s.KVUsage} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted unusable value %v", v)
			}
		}
		if s.KVUsage > 1 {
			t.Fatalf("accepted KV use %v", s.KVUsage)
		}
		if s.LoRA != nil && s.LoRA.MaxLoRA < 0 {
			t.Fatalf("negative max_lora %d", s.LoRA.MaxLoRA)
		}

		// Oracle: the full parse, when it works, has the same families.
		p := expfmt.NewTextParser(model.UTF8Validation)
		families, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return
		}
		var waiting float64
		for _, m := range families[names.Waiting].GetMetric() {
			waiting += m.GetGauge().GetValue() + m.GetUntyped().GetValue() + m.GetCounter().GetValue()
		}
		if waiting != s.Waiting {
			t.Fatalf("waiting: filtered parse %v, full parse %v", s.Waiting, waiting)
		}
	})
}

// excerpt keeps a fixture's families the parser reads plus a histogram's
// first lines: small seeds keep the fuzzer's input minimization fast.
func excerpt(body []byte) []byte {
	var out bytes.Buffer
	buckets := 0
	for line := range strings.Lines(string(body)) {
		keep := strings.Contains(line, "num_requests") || strings.Contains(line, "kv_cache") ||
			strings.Contains(line, "lora_requests_info") || strings.Contains(line, "cache_config")
		if !keep && strings.Contains(line, "e2e_request_latency") && buckets < 6 {
			keep = true
			buckets++
		}
		if keep {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}

// FuzzParseFastMatchesExpfmt: whenever the fast path reads an exposition
// itself, the expfmt path gives the same Sample and the same error.
func FuzzParseFastMatchesExpfmt(f *testing.F) {
	for _, name := range fixtures {
		body, err := os.ReadFile("../testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(excerpt(body))
	}
	f.Add([]byte("# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine=\"0\"} 1\nvllm:num_requests_waiting{engine=\"1\",} 2\nvllm:num_requests_running{} 2\nvllm:kv_cache_usage_perc 0.5\n"))
	f.Add([]byte("vllm:num_requests_waiting 1e308\nvllm:num_requests_waiting 1e308\nvllm:num_requests_running -0\nvllm:gpu_cache_usage_perc 0.5\nvllm:cache_config_info{num_gpu_blocks=\"+7\",block_size=\"99999999999999999999\"} 1\n"))
	f.Add([]byte(`vllm:lora_requests_info{max_lora="1",running_lora_adapters="a, b,a",waiting_lora_adapters=""} NaN` + "\n" + `vllm:lora_requests_info{max_lora="3",running_lora_adapters="c"} 2` + "\n"))

	names, _ := ForEngine(EngineVLLM)
	fast := NewParser()
	f.Fuzz(func(t *testing.T, body []byte) {
		fast.wanted = names.list(fast.wanted[:0])
		got, ok, gotErr := fast.parseFast(body, &names)
		if !ok {
			return
		}
		want, wantErr := viaExpfmt(body, &names)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("errors differ: fast %v, expfmt %v", gotErr, wantErr)
		}
		if !sameSample(got, want) {
			t.Fatalf("samples differ: fast %+v %+v, expfmt %+v %+v", got, got.LoRA, want, want.LoRA)
		}
	})
}

func sameSample(a, b Sample) bool {
	la, lb := a.LoRA, b.LoRA
	a.LoRA, b.LoRA = nil, nil
	if a != b && !(math.IsNaN(a.KVUsage) && math.IsNaN(b.KVUsage)) {
		return false
	}
	if (la == nil) != (lb == nil) {
		return false
	}
	if la == nil {
		return true
	}
	return slices.Equal(la.Running, lb.Running) && slices.Equal(la.Waiting, lb.Waiting) && la.MaxLoRA == lb.MaxLoRA
}

// FuzzLineFilter: the fast path's precomputed filter keeps exactly the
// lines keepLine keeps.
func FuzzLineFilter(f *testing.F) {
	f.Add([]byte("vllm:num_requests_waiting{a=\"b\"} 1"), "vllm:num_requests_waiting", "x")
	f.Add([]byte(" \t# TYPE\tvllm:kv 1"), "vllm:kv", "vllm:kv_cache")
	f.Add([]byte("{\"a\"} 1"), "a", "")
	f.Add([]byte("#  TYPE \"x\" gauge"), "b", "bb")
	f.Fuzz(func(t *testing.T, line []byte, a, b string) {
		if bytes.IndexByte(line, '\n') >= 0 || a == "" || b == "" {
			return // Names.list never lists an empty name
		}
		wanted := []string{a, b}
		var lf lineFilter
		lf.reset(wanted)
		if got, want := lf.keep(line), keepLine(line, wanted); got != want {
			t.Fatalf("filter %v, keepLine %v", got, want)
		}
	})
}
