package metrics

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func vllm(t *testing.T) *Names {
	t.Helper()
	n, err := ForEngine(EngineVLLM)
	require.NoError(t, err)
	return &n
}

func TestParseFixtures(t *testing.T) {
	for _, tc := range []struct {
		file        string
		want        Sample
		wantRunning []string
		wantWaiting []string
	}{
		{
			file: "vllm_metrics_sim_main.txt",
			want: Sample{Waiting: 3, Running: 4, KVUsage: 0.015625, BlockSize: 16, NumGPUBlocks: 256},
			// Two series share the newest timestamp: their lists merge.
			wantRunning: nil,
			wantWaiting: []string{"lora-a", "lora-b"},
		},
		{
			file:        "vllm_metrics_sim_v0.10.2.txt",
			want:        Sample{Waiting: 3, Running: 1, KVUsage: 0, BlockSize: 16, NumGPUBlocks: 64},
			wantRunning: []string{"lora-b"},
			wantWaiting: nil,
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile("../testdata/" + tc.file)
			require.NoError(t, err)
			got, err := NewParser().Parse(body, vllm(t))
			require.NoError(t, err)
			require.NotNil(t, got.LoRA)
			require.Equal(t, tc.wantRunning, got.LoRA.Running)
			require.Equal(t, tc.wantWaiting, got.LoRA.Waiting)
			require.Equal(t, 1, got.LoRA.MaxLoRA)
			got.LoRA = nil
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseHandMade(t *testing.T) {
	const ok = "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\nvllm:kv_cache_usage_perc 0.5\n"
	for _, tc := range []struct {
		name    string
		body    string
		want    Sample
		wantErr string
	}{
		{name: "minimal untyped", body: ok, want: Sample{Waiting: 1, Running: 2, KVUsage: 0.5}},
		{name: "no trailing newline", body: strings.TrimSuffix(ok, "\n"), want: Sample{Waiting: 1, Running: 2, KVUsage: 0.5}},
		{
			name: "data-parallel series: load summed, KV averaged",
			body: "# TYPE vllm:num_requests_waiting gauge\n" +
				`vllm:num_requests_waiting{engine="0",model_name="m"} 2` + "\n" +
				`vllm:num_requests_waiting{engine="1",model_name="m"} 3` + "\n" +
				`vllm:num_requests_running{engine="0"} 4` + "\n" +
				`vllm:num_requests_running{engine="1"} 1` + "\n" +
				`vllm:kv_cache_usage_perc{engine="0"} 0.2` + "\n" +
				`vllm:kv_cache_usage_perc{engine="1"} 0.6` + "\n",
			want: Sample{Waiting: 5, Running: 5, KVUsage: 0.4},
		},
		{
			name: "older vLLM KV name",
			body: "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:gpu_cache_usage_perc 0.25\n",
			want: Sample{KVUsage: 0.25},
		},
		{
			name: "irrelevant garbage lines are not parsed",
			body: ok + "some_histogram_bucket{le=\"0.1\" 7 garbage\n# just a comment\n",
			want: Sample{Waiting: 1, Running: 2, KVUsage: 0.5},
		},
		{
			name: "quoted UTF-8 names",
			body: `{"vllm:num_requests_waiting"} 1` + "\n" + `{"vllm:num_requests_running",a="b"} 2` + "\nvllm:kv_cache_usage_perc 0\n",
			want: Sample{Waiting: 1, Running: 2},
		},
		{name: "huge but finite", body: "vllm:num_requests_waiting 1e300\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 1\n", want: Sample{Waiting: 1e300, KVUsage: 1}},
		{name: "empty", body: "", wantErr: "missing metric vllm:num_requests_waiting"},
		{name: "missing running", body: "vllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 0\n", wantErr: "missing metric vllm:num_requests_running"},
		{name: "missing KV", body: "vllm:num_requests_waiting 1\nvllm:num_requests_running 0\n", wantErr: "missing metric vllm:kv_cache_usage_perc"},
		{name: "NaN", body: "vllm:num_requests_waiting NaN\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n", wantErr: "vllm:num_requests_waiting has value NaN"},
		{name: "infinite", body: "vllm:num_requests_waiting 0\nvllm:num_requests_running +Inf\nvllm:kv_cache_usage_perc 0\n", wantErr: "vllm:num_requests_running has value +Inf"},
		{name: "overflowing sum", body: "vllm:num_requests_waiting{e=\"0\"} 1e308\nvllm:num_requests_waiting{e=\"1\"} 1e308\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n", wantErr: "overflows"},
		{name: "negative", body: "vllm:num_requests_waiting -1\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n", wantErr: "has value -1"},
		{name: "KV above one", body: "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 37\n", wantErr: "outside [0,1]"},
		{name: "bad value", body: "vllm:num_requests_waiting abc\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n", wantErr: "parse exposition"},
		{name: "binary garbage", body: "\x00\x01\xff\n\n", wantErr: "missing metric"},
		{name: "garbage in quoted form", body: "{{{\n", wantErr: "parse exposition"},
		{name: "empty braces make the upstream parser panic", body: "{}", wantErr: "parser panic"},
		{name: "summary under a gauge's name", body: "# TYPE vllm:num_requests_waiting summary\nvllm:num_requests_waiting 3\n", wantErr: "has type summary, want a gauge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewParser().Parse([]byte(tc.body), vllm(t))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want.KVUsage, got.KVUsage, 1e-12)
			got.KVUsage = tc.want.KVUsage
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseLoRA(t *testing.T) {
	const load = "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n"
	for _, tc := range []struct {
		name string
		body string
		want *LoRA
	}{
		{name: "absent", body: load, want: nil},
		{
			name: "newest wins",
			body: load +
				`vllm:lora_requests_info{max_lora="2",running_lora_adapters="old",waiting_lora_adapters=""} 100` + "\n" +
				`vllm:lora_requests_info{max_lora="2",running_lora_adapters="a, b",waiting_lora_adapters="c"} 200` + "\n",
			want: NewLoRA([]string{"a", "b"}, []string{"c"}, 2),
		},
		{
			name: "NaN timestamps ignored",
			body: load + `vllm:lora_requests_info{max_lora="1",running_lora_adapters="x",waiting_lora_adapters=""} NaN` + "\n",
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewParser().Parse([]byte(tc.body), vllm(t))
			require.NoError(t, err)
			require.Equal(t, tc.want, got.LoRA)
		})
	}
}

func TestLoRAQueries(t *testing.T) {
	for _, l := range []*LoRA{
		NewLoRA([]string{"a"}, []string{"b"}, 3),
		{Running: []string{"a"}, Waiting: []string{"b"}, MaxLoRA: 3}, // without keys
	} {
		require.True(t, l.IsRunning("a", Key("a")))
		require.False(t, l.IsRunning("b", Key("b")))
		require.True(t, l.IsWaiting("b", Key("b")))
		require.False(t, l.IsWaiting("a", Key("a")))
		require.True(t, l.HasRoom())
	}
	require.False(t, NewLoRA([]string{"a"}, []string{"b"}, 2).HasRoom())
	require.False(t, (&LoRA{Running: []string{"a"}, Waiting: []string{"b"}, MaxLoRA: 2}).HasRoom())
	var none *LoRA
	require.False(t, none.IsRunning("a", Key("a")), "no LoRA metrics: nothing runs")
	require.False(t, none.IsWaiting("a", Key("a")))
}

// TestLoRAHint checks the one-word summary against the lists it
// summarizes: a "no" from MayRun or MayWait is exact, HasRoom is exact,
// on random states over names whose hint bits collide.
func TestLoRAHint(t *testing.T) {
	require.Zero(t, (*LoRA)(nil).Hint(), "no LoRA: nothing known")
	require.False(t, LoRAHint(0).Known())
	require.True(t, LoRAHint(0).MayRun(HintKey(Key("a"))), "an unknown hint says maybe")
	require.True(t, LoRAHint(0).MayWait(HintKey(Key("a"))))

	names := make([]string, 80) // more names than bits: some share one
	for i := range names {
		names[i] = fmt.Sprint("adapter-", i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pickSome := func() []string {
		var out []string
		for range rng.IntN(5) {
			out = append(out, names[rng.IntN(len(names))])
		}
		return out
	}
	maybes := 0
	for range 2000 {
		running, waiting := pickSome(), pickSome()
		maxLoRA := rng.IntN(8)
		for _, l := range []*LoRA{
			NewLoRA(running, waiting, maxLoRA),
			{Running: running, Waiting: waiting, MaxLoRA: maxLoRA}, // without NewLoRA
		} {
			h := l.Hint()
			require.True(t, h.Known())
			require.Equal(t, NewLoRA(running, waiting, maxLoRA).Hint(), h)
			require.Equal(t, l.HasRoom(), h.HasRoom())
			for _, n := range names {
				k := Key(n)
				if l.IsRunning(n, k) {
					require.True(t, h.MayRun(HintKey(k)), "%s runs on %v", n, running)
				} else if h.MayRun(HintKey(k)) {
					maybes++
				}
				if l.IsWaiting(n, k) {
					require.True(t, h.MayWait(HintKey(k)), "%s waits on %v", n, waiting)
				}
			}
		}
	}
	require.Positive(t, maybes, "colliding names must have been asked too")
}

func TestForEngine(t *testing.T) {
	for _, engine := range []string{EngineVLLM, EngineSGLang, EngineTRTLLM} {
		n, err := ForEngine(engine)
		require.NoError(t, err, engine)
		require.NotEmpty(t, n.Waiting)
		require.NotEmpty(t, n.Running)
		require.NotEmpty(t, n.KVUsage)
	}
	_, err := ForEngine("tgi")
	require.ErrorContains(t, err, `unknown engine "tgi"`)
}

// Each engine's cache geometry is read from its own labels: SGLang's
// cache_config_info says page_size and num_pages, vLLM's block_size and
// num_gpu_blocks; the other engine's labels are not mistaken for them.
func TestParseCacheGeometry(t *testing.T) {
	const sglang = "# TYPE sglang:cache_config_info gauge\n" +
		"sglang:cache_config_info{page_size=\"64\",num_pages=\"5120\",block_size=\"1\"} 1\n" +
		"sglang:num_queue_reqs 2\nsglang:num_running_reqs 7\nsglang:token_usage 0.4\n"
	const vllm = "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"4096\",page_size=\"99\"} 1\n" +
		"vllm:num_requests_waiting 0\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.1\n"
	for _, tc := range []struct {
		engine, body      string
		blockSize, blocks int
	}{
		{EngineSGLang, sglang, 64, 5120},
		{EngineVLLM, vllm, 16, 4096},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			n, err := ForEngine(tc.engine)
			require.NoError(t, err)
			s, err := NewParser().Parse([]byte(tc.body), &n)
			require.NoError(t, err)
			require.Equal(t, tc.blockSize, s.BlockSize)
			require.Equal(t, tc.blocks, s.NumGPUBlocks)
		})
	}
}

func TestSelectLines(t *testing.T) {
	in := "# HELP a The a.\n# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 2\nab 3\n  a 4\n# comment a\n#TYPE a gauge\n{\"b\"} 5\n# HELPa x\n"
	got := string(selectLines(nil, []byte(in), []string{"a"}))
	require.Equal(t, "# TYPE a gauge\na{x=\"1\"} 1\n  a 4\n#TYPE a gauge\n{\"b\"} 5\n", got)
}

// A reused expfmt.TextParser carries the previous input's last metric into
// the next parse (found by FuzzParseMetrics): a line "{}" then attaches to
// it instead of failing. Parse must answer the same after any history.
func TestParseIgnoresHistory(t *testing.T) {
	garbage := []byte("# TYPE vllm:cache_config_info gauge\n{}0\nvllm:kv_cache_usage_perc 0\nvllm:num_requests_running 0\nvllm:num_requests_waiting 0\n")
	_, fresh := NewParser().Parse(garbage, vllm(t))
	require.Error(t, fresh)

	p := NewParser()
	_, err := p.Parse([]byte("vllm:num_requests_waiting{a=\"b\"} 1\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n"), vllm(t))
	require.NoError(t, err)
	_, err = p.Parse(garbage, vllm(t))
	require.Equal(t, fresh, err)
}
