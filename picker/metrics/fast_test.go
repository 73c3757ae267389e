package metrics

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var fixtures = []string{"vllm_metrics_sim_main.txt", "vllm_metrics_sim_v0.10.2.txt", "vllm_metrics_v0.10.2_full.txt"}

// The fixtures are what real servers write: the fast path must read them
// itself, agree with expfmt, and not allocate once warm.
func TestParseFastReadsFixturesWithoutAllocating(t *testing.T) {
	for _, file := range fixtures {
		t.Run(file, func(t *testing.T) {
			body, err := os.ReadFile("../testdata/" + file)
			require.NoError(t, err)
			names := vllm(t)
			p := NewParser()
			p.wanted = names.list(p.wanted[:0])
			fast, ok, err := p.parseFast(body, names)
			require.True(t, ok, "fast path gave up")
			require.NoError(t, err)
			slow, err := viaExpfmt(body, names)
			require.NoError(t, err)
			require.Equal(t, slow, fast)

			allocs := testing.AllocsPerRun(20, func() {
				if _, err := p.Parse(body, names); err != nil {
					t.Fatal(err)
				}
			})
			require.Zero(t, allocs)
		})
	}
}

func TestParseRealisticVLLM(t *testing.T) {
	body, err := os.ReadFile("../testdata/vllm_metrics_v0.10.2_full.txt")
	require.NoError(t, err)
	got, err := NewParser().Parse(body, vllm(t))
	require.NoError(t, err)
	require.NotNil(t, got.LoRA)
	// The newest of five lora_requests_info series.
	require.Equal(t, []string{"sql-lora"}, got.LoRA.Running)
	require.Equal(t, []string{"chat-lora"}, got.LoRA.Waiting)
	require.Equal(t, 2, got.LoRA.MaxLoRA)
	got.LoRA = nil
	require.Equal(t, Sample{Waiting: 3, Running: 12, KVUsage: 0.41274, BlockSize: 16, NumGPUBlocks: 27319}, got)
}

// What the fast path leaves to expfmt still parses the same way.
func TestParseFastGivesUp(t *testing.T) {
	const tail = "vllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0.5\n"
	for _, tc := range []struct{ name, body string }{
		{"timestamp", "vllm:num_requests_waiting 1 1700000000000\n" + tail},
		{"escaped label value", `vllm:num_requests_waiting{a="x\"y"} 1` + "\n" + tail},
		{"non-ASCII label value", `vllm:num_requests_waiting{a="é"} 1` + "\n" + tail},
		{"blank before labels", `vllm:num_requests_waiting {a="b"} 1` + "\n" + tail},
		{"two blanks before value", "vllm:num_requests_waiting  1\n" + tail},
		{"tab", "vllm:num_requests_waiting\t1\n" + tail},
		{"quoted name", `{"vllm:num_requests_waiting"} 1` + "\n" + tail},
		{"upper-case type", "# TYPE vllm:num_requests_waiting GAUGE\nvllm:num_requests_waiting 1\n" + tail},
		{"histogram type", "# TYPE vllm:num_requests_waiting histogram\nvllm:num_requests_waiting 1\n" + tail},
		{"second TYPE", "# TYPE vllm:num_requests_waiting gauge\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 1\n" + tail},
		{"TYPE after samples", "vllm:num_requests_waiting 1\n# TYPE vllm:num_requests_waiting gauge\n" + tail},
		{"duplicate label", `vllm:num_requests_waiting{a="1",a="2"} 1` + "\n" + tail},
		{"duplicate label among others", `vllm:num_requests_waiting{block_size="1",aA="x",Aa="y",cache_dtype="2",block_size="3"} 1` + "\n" + tail},
		{"reserved label", `vllm:num_requests_waiting{__name__="x"} 1` + "\n" + tail},
		{"underscore in value", "vllm:num_requests_waiting 1_000\n" + tail},
		{"leading blank", " vllm:num_requests_waiting 1\n" + tail},
		{"CRLF", "vllm:num_requests_waiting 1\r\n" + tail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := vllm(t)
			p := NewParser()
			p.wanted = names.list(p.wanted[:0])
			_, ok, _ := p.parseFast([]byte(tc.body), names)
			require.False(t, ok)
			s1, err1 := NewParser().Parse([]byte(tc.body), names)
			s2, err2 := viaExpfmt([]byte(tc.body), names)
			require.Equal(t, s2, s1)
			require.Equal(t, err2, err1)
		})
	}
}

// A LoRA state that does not change is the same *LoRA scrape after scrape;
// a change gives a new one.
func TestParseFastReusesUnchangedLoRA(t *testing.T) {
	const load = "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n"
	a := load + `vllm:lora_requests_info{max_lora="2",running_lora_adapters="x",waiting_lora_adapters=""} 5` + "\n"
	b := load + `vllm:lora_requests_info{max_lora="2",running_lora_adapters="y",waiting_lora_adapters=""} 5` + "\n"
	p := NewParser()
	names := vllm(t)
	s1, err := p.Parse([]byte(a), names)
	require.NoError(t, err)
	s2, err := p.Parse([]byte(a), names)
	require.NoError(t, err)
	require.Same(t, s1.LoRA, s2.LoRA)
	s3, err := p.Parse([]byte(b), names)
	require.NoError(t, err)
	require.Equal(t, []string{"y"}, s3.LoRA.Running)
	require.Equal(t, []string{"x"}, s1.LoRA.Running, "a published LoRA is never modified")
}

// viaExpfmt parses through the expfmt path only.
func viaExpfmt(body []byte, names *Names) (Sample, error) {
	p := NewParser()
	p.wanted = names.list(p.wanted[:0])
	return p.parseExpfmt(body, names)
}

// The line filter's 8-byte word check rules lines out only where keepLine
// does: every line of the fixtures and lines made to pass or fail each step
// (same first byte, same word, a name's prefix, shorter than the word).
func TestLineFilterWords(t *testing.T) {
	var lines []string
	for _, file := range fixtures {
		body, err := os.ReadFile("../testdata/" + file)
		require.NoError(t, err)
		lines = append(lines, strings.Split(string(body), "\n")...)
	}
	lines = append(lines, "", "v", "vllm:", "vllm:num", "vllm:num_requ", "vllm:num_requests_waitin",
		"vllm:num_requests_waiting", "vllm:num_requests_waiting 1", "vllm:num_requests_waitingx 1",
		"vllm:num_requests_waiting\t1", "  vllm:kv_cache_usage_perc{a=\"b\"} 1", "vllm:kv_cache_usage_perc_x 1",
		"# TYPE vllm:kv_cache_usage_perc gauge", "#\tTYPE  vllm:cache_config_info gauge", "# TYPE vllm:cache_config gauge",
		"sglang:num_queue_reqs 1", "sglang:num_queue_reqsx 1", "sglang:token_usage{a=\"b\"} 1", "sglang:token 1",
		"trtllm_num_requests_waiting 1", "trtllm_kv_cache_utilization 0.5", "trtllm_kv 1", `{"x"} 1`)
	for _, engine := range []string{EngineVLLM, EngineSGLang, EngineTRTLLM} {
		names, err := ForEngine(engine)
		require.NoError(t, err)
		wanted := names.list(nil)
		var f lineFilter
		f.reset(wanted)
		require.NotEmpty(t, f.words, engine)
		t.Run(engine, func(t *testing.T) {
			kept := 0
			for _, l := range lines {
				want := keepLine([]byte(l), wanted)
				require.Equal(t, want, f.keep([]byte(l)), "%q", l)
				if want {
					kept++
				}
			}
			require.NotZero(t, kept)
		})
	}
	// A wanted name shorter than its common prefix plus 8 bytes: no word check.
	var f lineFilter
	f.reset([]string{"ab", "abcdefghijkl"})
	require.Empty(t, f.words)
	require.True(t, f.keep([]byte("ab 1")))
	require.True(t, f.keep([]byte("abcdefghijkl{a=\"b\"} 1")))
	require.False(t, f.keep([]byte("abc 1")))
}

// Label names that share a labelBit are still told apart: the fast path
// reads the series and agrees with expfmt.
func TestParseFastLabelsSharingABit(t *testing.T) {
	require.Equal(t, labelBit([]byte("aA")), labelBit([]byte("Aa")))
	body := []byte(`vllm:num_requests_waiting{aA="1",Aa="2",b="3"} 4` + "\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0.5\n")
	names := vllm(t)
	p := NewParser()
	p.wanted = names.list(p.wanted[:0])
	fast, ok, err := p.parseFast(body, names)
	require.True(t, ok)
	require.NoError(t, err)
	slow, err := viaExpfmt(body, names)
	require.NoError(t, err)
	require.Equal(t, slow, fast)
	require.Equal(t, 4.0, fast.Waiting)
}

// A parser that remembers each series' label block (labelMemo) reads a
// body as a fresh parser does, whatever it read before: the same blocks
// with other values, one label value changed (block size, adapters), a
// block cut short or made invalid after a valid one, series reordered.
func TestParseFastLabelMemo(t *testing.T) {
	const load = "vllm:num_requests_waiting{engine=\"0\"} 1\nvllm:num_requests_running{engine=\"0\"} 2\nvllm:kv_cache_usage_perc{engine=\"0\"} 0.5\n"
	cfg := func(block, blocks string) string {
		return `vllm:cache_config_info{block_size="` + block + `",cache_dtype="auto",num_gpu_blocks="` + blocks + `"} 1` + "\n"
	}
	lora := func(running, waiting string, v string) string {
		return `vllm:lora_requests_info{max_lora="2",running_lora_adapters="` + running + `",waiting_lora_adapters="` + waiting + `"} ` + v + "\n"
	}
	for _, tc := range []struct {
		name   string
		bodies []string // parsed in turn by one parser
	}{
		{"same blocks, other values", []string{load + cfg("16", "100") + lora("a", "", "5"), strings.ReplaceAll(load, "} 1", "} 7") + cfg("16", "100") + lora("a", "", "6")}},
		{"block size changes", []string{load + cfg("16", "100"), load + cfg("32", "100"), load + cfg("32", "50")}},
		{"adapters change", []string{load + lora("a", "", "5") + lora("b", "a", "6"), load + lora("b", "a", "5") + lora("a", "", "6")}},
		{"block cut after a valid one", []string{load + cfg("16", "100"), load + `vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="100"`}},
		{"block made invalid", []string{load + cfg("16", "100"), load + `vllm:cache_config_info{block_size="16",block_size="16",num_gpu_blocks="100"} 1` + "\n"}},
		{"same block, no blank after it", []string{load + cfg("16", "100"), load + `vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="100"}1` + "\n"}},
		{"longer line sharing the block's start", []string{load + cfg("16", "1"), load + cfg("16", "10")}},
		{"label renamed, same length", []string{load + cfg("16", "100"), load + strings.Replace(cfg("16", "100"), "block_size", "block_sizX", 1)}},
		{"duplicate label, same length", []string{load + `vllm:cache_config_info{a="1",b="2"} 1` + "\n", load + `vllm:cache_config_info{a="1",a="2"} 1` + "\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := vllm(t)
			p := NewParser()
			for i, body := range tc.bodies {
				got, gotErr := p.Parse([]byte(body), names)
				want, wantErr := NewParser().Parse([]byte(body), names)
				require.Equal(t, want, got, "body %d", i)
				require.Equal(t, wantErr, gotErr, "body %d", i)
			}
		})
	}
}

// One parser shared by two sources, each with its LoRAMemo swapped in
// around its parse: each keeps its own unchanged *LoRA scrape after
// scrape, and gets its own values, as with a parser of its own.
func TestParserSwapLoRA(t *testing.T) {
	const load = "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n"
	bodies := map[string]string{
		"a": load + `vllm:lora_requests_info{max_lora="2",running_lora_adapters="x",waiting_lora_adapters=""} 5` + "\n",
		"b": load + `vllm:lora_requests_info{max_lora="2",running_lora_adapters="y",waiting_lora_adapters="z"} 5` + "\n",
	}
	names := vllm(t)
	p := NewParser()
	memos := map[string]*LoRAMemo{"a": {}, "b": {}}
	first := map[string]*LoRA{}
	for range 3 {
		for _, src := range []string{"a", "b"} {
			p.SwapLoRA(memos[src])
			s, err := p.Parse([]byte(bodies[src]), names)
			p.SwapLoRA(memos[src])
			require.NoError(t, err)
			want, err := NewParser().Parse([]byte(bodies[src]), names)
			require.NoError(t, err)
			require.Equal(t, want.LoRA, s.LoRA)
			if first[src] == nil {
				first[src] = s.LoRA
			}
			require.Same(t, first[src], s.LoRA, "source %s", src)
		}
	}
}
