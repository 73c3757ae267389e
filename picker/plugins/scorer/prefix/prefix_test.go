package prefix

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func TestAppendHashes(t *testing.T) {
	h0 := ModelHash("m")
	require.Equal(t, xxhash.Sum64String("m"), h0)
	prompt := []byte(strings.Repeat("a", 64) + strings.Repeat("b", 64) + "tail")

	got := AppendHashes(nil, h0, prompt, 64, 256)
	require.Equal(t, []uint64{refHash(h0, prompt[:64]), refHash(h0, prompt[:128])}, got,
		"one hash per whole block, each over the prefix up to it; the partial trailing block is not hashed")
	require.Len(t, AppendHashes(nil, h0, prompt, 64, 1), 1, "maxBlocks caps")
	require.NotEqual(t, got, AppendHashes(nil, ModelHash("other"), prompt, 64, 256), "the model is in the chain")
	require.Equal(t, got[1], chainHash(h0, prompt, 64, 2))
	require.Equal(t, got[0], chainHash(h0, prompt, 64, 1))
	require.Empty(t, AppendHashes(nil, h0, prompt[:63], 64, 256), "shorter than a block")
}

// refHash is the definition AppendHashes implements: XXH64 of the whole
// prefix, seeded with the model's hash.
func refHash(h0 uint64, prefix []byte) uint64 {
	d := xxhash.NewWithSeed(h0)
	_, _ = d.Write(prefix)
	return d.Sum64()
}

func TestPrefixHashesAreXXH64(t *testing.T) {
	prompt := make([]byte, 1000)
	for i := range prompt {
		prompt[i] = byte(i*131 + i>>8)
	}
	// Block sizes around XXH64's 32-byte stripe and its 8- and 4-byte tails.
	for _, bs := range []int{1, 3, 4, 7, 8, 12, 31, 32, 33, 63, 64, 65, 200, 1000} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			checkPrefixHashes(t, 42, prompt, bs)
		})
	}
}

func FuzzPrefixHashes(f *testing.F) {
	f.Add(uint64(1), []byte(strings.Repeat("You are helpful. ", 20)), uint8(64))
	f.Add(uint64(0), []byte("short"), uint8(3))
	f.Fuzz(func(t *testing.T, h0 uint64, prompt []byte, bs uint8) {
		if bs == 0 {
			return
		}
		checkPrefixHashes(t, h0, prompt, int(bs))
	})
}

func checkPrefixHashes(t *testing.T, h0 uint64, prompt []byte, bs int) {
	t.Helper()
	got := AppendHashes(nil, h0, prompt, bs, len(prompt))
	require.Len(t, got, len(prompt)/bs)
	for k, h := range got {
		require.Equal(t, refHash(h0, prompt[:(k+1)*bs]), h, "block %d", k)
		require.Equal(t, h, chainHash(h0, prompt, bs, k+1), "block %d", k)
	}
}

func TestFirstElementEnd(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  int
	}{
		{in: `[{"role":"system","content":"hi"},{"role":"user"}]`, limit: 1000, want: len(`[{"role":"system","content":"hi"}`)},
		{in: ` [ {"a":"x\"}"} , 1]`, limit: 1000, want: len(` [ {"a":"x\"}"}`)},
		{in: `[{"a":"x\\"},2]`, limit: 1000, want: len(`[{"a":"x\\"}`)},
		{in: `["first","second"]`, limit: 1000, want: len(`["first"`)},
		{in: `[[1,[2]],3]`, limit: 1000, want: len(`[[1,[2]]`)},
		{in: `[12,3]`, limit: 1000, want: len(`[12`)},
		{in: `[{"role":"system","content":"long"}]`, limit: 10, want: -1},
		{in: `"a completion prompt"`, limit: 1000, want: -1},
		{in: `[}`, limit: 1000, want: -1},
		{in: ``, limit: 1000, want: -1},
	} {
		t.Run(tc.in, func(t *testing.T) {
			require.Equal(t, tc.want, firstElementEnd([]byte(tc.in), tc.limit))
		})
	}
}

func cycle(model string, prompt []byte) *framework.Cycle {
	c := &framework.Cycle{}
	c.Reset(&framework.Request{Model: model, ModelKey: ModelHash(model), Prompt: prompt}, 0, 1)
	return c
}

func endpoints(n int) []framework.Endpoint {
	eps := make([]framework.Endpoint, n)
	for i := range eps {
		addr := fmt.Sprintf("10.0.0.%d:8000", i+1)
		eps[i] = framework.Endpoint{Addr: addr, Key: xxhash.Sum64String(addr), ID: int32(i), Member: int32(i)}
	}
	return eps
}

func blocks(n int, seed string) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%-64s", fmt.Sprintf("%s block %d", seed, i))
	}
	return []byte(b.String())
}

// learned is a learned-mode scorer without the rendezvous floor: what the
// index holds, alone.
func learned(t *testing.T, capacity int) *Scorer {
	t.Helper()
	p := Defaults
	p.Mode, p.LRUCapacity, p.RendezvousFloor = Learned, capacity, new(0.0)
	p.QueueSlack = new(1.0) // whole: the tests' limits do not depend on the draw
	s, err := New(p)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func score(s *Scorer, c *framework.Cycle, eps []framework.Endpoint) []float64 {
	out := make([]float64, len(eps))
	s.Score(c, eps, out)
	return out
}

func TestLearnedScoresLeadingBlocksMatched(t *testing.T) {
	s := learned(t, 1000)
	eps := endpoints(4)
	system := blocks(6, "system")
	// Endpoint 1 served the system prompt plus a first question; endpoint 2
	// served the first 3 blocks only; endpoint 3 a different model.
	s.Picked(cycle("m", append(append([]byte{}, system...), blocks(2, "q1")...)), &eps[1])
	s.Picked(cycle("m", system[:3*64]), &eps[2])
	s.Picked(cycle("other", system), &eps[3])
	s.Index().Flush()

	req := append(append([]byte{}, system...), blocks(4, "q2")...) // 10 blocks
	got := score(s, cycle("m", req), eps)
	require.InDeltaSlice(t, []float64{0, 0.6, 0.3, 0}, got, 1e-9)

	// Only candidates count: without endpoint 1, endpoint 2 still gets its 3.
	got = score(s, cycle("m", req), []framework.Endpoint{eps[2], eps[0]})
	require.InDeltaSlice(t, []float64{0.3, 0}, got, 1e-9)

	// A prompt shorter than one block has nothing to match.
	require.Equal(t, []float64{0, 0, 0, 0}, score(s, cycle("m", []byte("short")), eps))
}

func TestLearnedYieldsToLoad(t *testing.T) {
	s := learned(t, 1000)
	eps := endpoints(3)
	prompt := blocks(4, "p")
	s.Picked(cycle("m", prompt), &eps[0])
	s.Picked(cycle("m", prompt), &eps[1])
	s.Index().Flush()

	eps[0].Waiting = 3 // shortest queue is 0 (endpoint 2): 3 > 0 + slack 1
	eps[1].Waiting, eps[1].Pending = 0, 1
	require.Equal(t, []float64{0, 1, 0}, score(s, cycle("m", prompt), eps))
}

func TestIndexLRU(t *testing.T) {
	x := NewIndex(4)
	defer x.Close()
	has := func(id int32, h uint64) bool {
		found := false
		x.Holders(h, func(got int32) bool {
			found = found || got == id
			return true
		})
		return found
	}
	x.Record(0, 0, []uint64{1, 2, 3})
	x.Record(1, 0, []uint64{1})
	x.Flush()
	require.True(t, has(0, 1) && has(0, 2) && has(0, 3) && has(1, 1))
	require.Equal(t, int64(3), x.Entries())

	// Two more hashes in an LRU of 4 evict the oldest one: blocks go in
	// deepest first, so of 1, 2, 3 the deepest (3) is the oldest, and what
	// is held of a chain stays a leading run of it.
	x.Record(0, 0, []uint64{10, 11})
	x.Flush()
	require.True(t, has(0, 1) && has(0, 2))
	require.False(t, has(0, 3))
	require.True(t, has(0, 10) && has(0, 11))
	x.Record(0, 0, []uint64{1}) // touching 1 makes 2 the oldest
	x.Record(0, 0, []uint64{12})
	x.Flush()
	require.True(t, has(0, 1))
	require.False(t, has(0, 2))
	require.True(t, has(1, 1), "other endpoints keep their entries")

	x.Forget(0)
	x.Flush()
	require.False(t, has(0, 1))
	require.False(t, has(0, 10))
	require.True(t, has(1, 1))
	require.Equal(t, int64(1), x.Entries())
}

func TestIndexCapacityPerEndpoint(t *testing.T) {
	x := NewIndex(4)
	defer x.Close()
	held := func(id int32, hs ...uint64) (n int) {
		for _, h := range hs {
			x.Holders(h, func(got int32) bool {
				if got == id {
					n++
				}
				return true
			})
		}
		return n
	}
	x.Record(0, 2, []uint64{1, 2, 3}) // endpoint 0 holds 2 blocks
	x.Record(1, 0, []uint64{1, 2, 3}) // endpoint 1 the default 4
	x.Flush()
	require.Equal(t, 2, held(0, 1, 2, 3))
	require.Equal(t, 3, held(1, 1, 2, 3))
	require.Equal(t, int64(3), x.Entries())

	// The server restarted with a smaller cache: its next record trims it.
	x.Record(1, 1, []uint64{9})
	x.Flush()
	require.Equal(t, 0, held(1, 1, 2, 3))
	require.Equal(t, 1, held(1, 9))
	// ...and a larger one keeps more again.
	x.Record(1, 3, []uint64{1, 2, 3})
	x.Flush()
	require.Equal(t, 3, held(1, 1, 2, 3))
	require.Equal(t, 0, held(1, 9))
}

func TestIndexDropsWhenBacklogged(t *testing.T) {
	x := NewIndex(4)
	x.mu.Lock()
	x.scheduled = true // as if a flush were pending: the queue only grows
	x.mu.Unlock()
	for range maxQueued + 10 {
		x.Record(0, 0, []uint64{1})
	}
	require.Equal(t, uint64(10), x.Dropped())
	x.Close()
	x.Record(0, 0, []uint64{1})
	require.Equal(t, uint64(11), x.Dropped(), "records after Close are dropped")
}

func rendezvous(t *testing.T) *Scorer {
	t.Helper()
	p := Defaults
	p.Mode = Rendezvous
	p.QueueSlack = new(1.0) // whole: the tests' limits do not depend on the draw
	s, err := New(p)
	require.NoError(t, err)
	return s
}

// A fractional queueSlack keeps affinity at random: a queue longer than the
// shortest by slack + f keeps it with probability 1 - f, drawn per cycle;
// whole slacks never depend on the draw.
func TestFractionalQueueSlackIsDrawnPerPick(t *testing.T) {
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	for _, tc := range []struct {
		name   string
		slack  float64
		excess float64 // the preferred endpoint's queue over the shortest
		kept   [2]int  // of 1000 cycles, at least and at most
	}{
		{name: "whole slack, at it", slack: 1, excess: 1, kept: [2]int{1000, 1000}},
		{name: "whole slack, beyond it", slack: 1, excess: 2, kept: [2]int{0, 0}},
		{name: "zero slack: only the shortest", slack: 0, excess: 1, kept: [2]int{0, 0}},
		{name: "half: one more kept half the time", slack: 0.5, excess: 1, kept: [2]int{430, 570}},
		{name: "half: the shortest always", slack: 0.5, excess: 0, kept: [2]int{1000, 1000}},
		{name: "half: two more never", slack: 0.5, excess: 2, kept: [2]int{0, 0}},
		{name: "0.75: one more kept three times in four", slack: 0.75, excess: 1, kept: [2]int{690, 810}},
		{name: "1.25: two more kept one time in four", slack: 1.25, excess: 2, kept: [2]int{190, 310}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Defaults
			p.Mode, p.QueueSlack = Rendezvous, new(tc.slack)
			s, err := New(p)
			require.NoError(t, err)
			eps := endpoints(4)
			score(s, cycle("m", prompt), eps) // seen once
			first := preferred(score(s, cycle("m", prompt), eps))
			eps[first].Waiting = tc.excess
			kept := 0
			for seed := range uint64(1000) {
				c := &framework.Cycle{}
				c.Reset(&framework.Request{Model: "m", ModelKey: ModelHash("m"), Prompt: prompt}, 0, seed*0x9e3779b97f4a7c15)
				if preferred(score(s, c, eps)) == first {
					kept++
				}
			}
			require.GreaterOrEqual(t, kept, tc.kept[0])
			require.LessOrEqual(t, kept, tc.kept[1])
		})
	}
}

// seenOnce scores the prompt once, so the scorer has seen its key: a
// key's first request goes by load (seenKeys).
func seenOnce(s *Scorer, model string, prompt []byte, eps []framework.Endpoint) {
	score(s, cycle(model, prompt), eps)
}

func preferred(out []float64) int {
	for i, v := range out {
		if v == 1 {
			return i
		}
	}
	return -1
}

func TestRendezvousIsConsistentWithoutState(t *testing.T) {
	a, b := rendezvous(t), rendezvous(t) // two independent proxies
	eps := endpoints(8)
	for i := range 20 {
		prompt := chat(fmt.Sprintf("system prompt number %d ", i)+strings.Repeat("be brief. ", 80), "hello")
		// A prompt start each proxy sees for the first time goes by load.
		require.Equal(t, -1, preferred(score(a, cycle("m", prompt), eps)))
		require.Equal(t, -1, preferred(score(b, cycle("m", prompt), eps)))
		pa := preferred(score(a, cycle("m", prompt), eps))
		require.GreaterOrEqual(t, pa, 0)
		require.Equal(t, pa, preferred(score(b, cycle("m", prompt), eps)))

		// Candidate order does not matter, and removing another endpoint
		// does not move the preference (rendezvous hashing's property).
		rev := make([]framework.Endpoint, 0, len(eps))
		for j := len(eps) - 1; j >= 0; j-- {
			if j != (pa+1)%len(eps) {
				rev = append(rev, eps[j])
			}
		}
		got := preferred(score(b, cycle("m", prompt), rev))
		require.Equal(t, eps[pa].Addr, rev[got].Addr)
	}
}

func chat(system, user string) []byte {
	return fmt.Appendf(nil, `[{"role":"system","content":%q},{"role":"user","content":%q}]`, system, user)
}

func TestRendezvousKeyIsTheSharedPart(t *testing.T) {
	s := rendezvous(t)
	eps := endpoints(16)
	long := strings.Repeat("You are a careful assistant. ", 40) // > 8 blocks
	short := "You are terse. Answer in one line, citing sources where you can."
	for _, tc := range []struct {
		name   string
		system string
		same   bool
	}{
		{name: "long system prompt: users share the first 8 blocks", system: long, same: true},
		{name: "short system prompt: the key stops at the first message", system: short + strings.Repeat(" ", 80), same: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := -1
			for i := range 10 {
				user := fmt.Sprintf("question %d: %s", i, strings.Repeat("why? ", 50))
				got := preferred(score(s, cycle("m", chat(tc.system, user)), eps))
				if i == 0 {
					require.Equal(t, -1, got, "the key's first request goes by load")
					continue
				}
				if first < 0 {
					first = got
				}
				require.Equal(t, first, got, "request %d", i)
			}
		})
	}
	// Different models never share a key by accident of the prompt.
	prompt := chat(long, "q")
	spread := map[int]bool{}
	for i := range 16 {
		score(s, cycle(fmt.Sprint("model-", i), prompt), eps) // seen once
		spread[preferred(score(s, cycle(fmt.Sprint("model-", i), prompt), eps))] = true
	}
	require.Greater(t, len(spread), 4)
}

// The other proxies' estimated requests (Endpoint.Others) grow with our own
// send rate, highest at the prompt's rendezvous server: affinity is judged
// without them, or every proxy of a fleet would leave that server at once.
func TestRendezvousJudgesAffinityWithoutTheOthersEstimate(t *testing.T) {
	s := rendezvous(t)
	eps := endpoints(6)
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	score(s, cycle("m", prompt), eps) // seen once
	first := preferred(score(s, cycle("m", prompt), eps))
	eps[first].Others = 1.5 // queue 1.5 by the estimate, 0 by what we know
	c := cycle("m", prompt)
	c.Others = true
	require.Equal(t, first, preferred(score(s, c, eps)), "the estimate alone does not move affinity")
	eps[first].Pending = 2 // ours: queue 2 beyond slack 1
	c = cycle("m", prompt)
	c.Others = true
	require.NotEqual(t, first, preferred(score(s, c, eps)), "our own requests do")
	eps[first].Pending = 0
	c = cycle("m", prompt) // a pool that does not set Others: Queue as is
	require.NotEqual(t, first, preferred(score(s, c, eps)))
}

func TestRendezvousYieldsToLoad(t *testing.T) {
	s := rendezvous(t)
	eps := endpoints(6)
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	score(s, cycle("m", prompt), eps) // seen once
	first := preferred(score(s, cycle("m", prompt), eps))
	eps[first].Waiting = 2 // shortest is 0: beyond slack 1
	second := preferred(score(s, cycle("m", prompt), eps))
	require.NotEqual(t, first, second)
	eps[second].Pending = 2
	third := preferred(score(s, cycle("m", prompt), eps))
	require.NotContains(t, []int{first, second}, third)
	eps[first].Waiting = 1 // within slack again: back home
	require.Equal(t, first, preferred(score(s, cycle("m", prompt), eps)))
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{name: "mode", edit: func(c *Config) { c.Mode = "magic" }, want: "mode: "},
		{name: "block size", edit: func(c *Config) { c.BlockSize = 0 }, want: "blockSize: "},
		{name: "max blocks", edit: func(c *Config) { c.MaxBlocks = MaxMaxBlocks + 1 }, want: "maxBlocks: "},
		{name: "negative LRU capacity", edit: func(c *Config) { c.LRUCapacity = -1 }, want: "lruCapacity: "},
		{name: "bytes per token", edit: func(c *Config) { c.BytesPerToken = -4 }, want: "bytesPerToken: "},
		{name: "bytes per token NaN", edit: func(c *Config) { c.BytesPerToken = math.NaN() }, want: "bytesPerToken: "},
		{name: "rendezvous blocks", edit: func(c *Config) { c.Mode, c.RendezvousBlocks = Rendezvous, 0 }, want: "rendezvousBlocks: "},
		{name: "queue slack", edit: func(c *Config) { c.QueueSlack = new(math.NaN()) }, want: "queueSlack: "},
		{name: "rendezvous floor", edit: func(c *Config) { c.RendezvousFloor = new(1.5) }, want: "rendezvousFloor: "},
		{name: "load bound", edit: func(c *Config) { c.LoadBound = 0.5 }, want: "loadBound: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			tc.edit(&c)
			_, err := New(c)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestConfigCapacity(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lru         int
		bpt         float64
		cacheTokens int64
		want        int32
	}{
		{name: "from the geometry: 320 blocks of 16 tokens, 4 bytes a token, 64-byte blocks", cacheTokens: 320 * 16, want: 320},
		{name: "bytes per token scale it", bpt: 6, cacheTokens: 320 * 16, want: 480},
		{name: "a tiny cache still keeps a block", cacheTokens: 1, want: 1},
		{name: "a huge cache is capped", cacheTokens: math.MaxInt64, want: math.MaxInt32},
		{name: "no geometry: the Inference Extension's size", want: FallbackCapacity},
		{name: "the override wins over the geometry", lru: 1000, cacheTokens: 320 * 16, want: 1000},
		{name: "the override without geometry", lru: 7, want: 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{LRUCapacity: tc.lru, BytesPerToken: tc.bpt}
			c.SetDefaults()
			require.Equal(t, tc.want, c.capacity(tc.cacheTokens))
		})
	}
}

func TestLearnedForgetsWhatTheServerEvicted(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cacheTokens int64 // per endpoint
		lru         int
		remembered  bool
	}{
		// 16 tokens × 4 bytes = one 64-byte block: room for the last
		// prompt's first block only.
		{name: "a cache of one block: the first prompt is gone", cacheTokens: 16},
		{name: "a cache of 200 blocks keeps it", cacheTokens: 200 * 16, remembered: true},
		{name: "no geometry: the fallback keeps it", remembered: true},
		{name: "the override wins", cacheTokens: 200 * 16, lru: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Mode: Learned, LRUCapacity: tc.lru, RendezvousFloor: new(0.0)}
			c.SetDefaults()
			s, err := New(c)
			require.NoError(t, err)
			t.Cleanup(s.Close)
			eps := endpoints(2)
			eps[0].CacheTokens, eps[1].CacheTokens = tc.cacheTokens, tc.cacheTokens
			first := blocks(4, "first")
			s.Picked(cycle("m", first), &eps[0])
			s.Picked(cycle("m", blocks(4, "second")), &eps[0])
			s.index.Flush()
			got := score(s, cycle("m", first), eps)
			if tc.remembered {
				require.Equal(t, []float64{1, 0}, got)
			} else {
				require.Equal(t, []float64{0, 0}, got)
			}
		})
	}
}

func TestRendezvousPrefersWhereTheAdapterRuns(t *testing.T) {
	s := rendezvous(t)
	eps := endpoints(8)
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	for i := range eps {
		eps[i].LoRA = metrics.NewLoRA([]string{"other"}, nil, 2)
	}
	seenOnce(s, "sql", prompt, eps)
	// Wherever the base model's key would go, an adapter request is
	// preferred only among the servers that run the adapter.
	for _, runs := range [][]int{{2}, {5, 6}, {0, 7}} {
		for i := range eps {
			eps[i].LoRA = metrics.NewLoRA([]string{"other"}, nil, 2)
		}
		for _, i := range runs {
			eps[i].LoRA = metrics.NewLoRA([]string{"sql"}, nil, 2)
		}
		c := &framework.Cycle{}
		c.Reset(&framework.Request{Model: "sql", ModelKey: metrics.Key("sql"), Prompt: prompt}, 0, 1)
		require.Contains(t, runs, preferred(score(s, c, eps)))
	}
	// When no server runs it, any may be preferred.
	for i := range eps {
		eps[i].LoRA = nil
	}
	c := &framework.Cycle{}
	c.Reset(&framework.Request{Model: "sql", ModelKey: metrics.Key("sql"), Prompt: prompt}, 0, 1)
	require.GreaterOrEqual(t, preferred(score(s, c, eps)), 0)
}

func TestRendezvousAdapterRunnersOverTheQueueLimit(t *testing.T) {
	s := rendezvous(t)
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	for _, tc := range []struct {
		name string
		runs []int // run the adapter
		busy []int // queue beyond the limit
		want []int // may be preferred; empty: none is
	}{
		{name: "every runner too busy: no preference", runs: []int{2, 5}, busy: []int{2, 5}},
		{name: "a runner within the limit is preferred", runs: []int{2, 5}, busy: []int{2}, want: []int{5}},
		{name: "no runner: any within the limit", busy: []int{0, 1, 2, 3}, want: []int{4, 5, 6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := endpoints(8)
			for _, i := range tc.runs {
				eps[i].LoRA = metrics.NewLoRA([]string{"sql"}, nil, 2)
			}
			for _, i := range tc.busy {
				eps[i].Waiting = 3 // shortest is 0: beyond slack 1
			}
			c := &framework.Cycle{}
			c.Reset(&framework.Request{Model: "sql", ModelKey: metrics.Key("sql"), Prompt: prompt}, 0, 1)
			got := preferred(score(s, c, eps))
			if len(tc.want) == 0 {
				require.Equal(t, -1, got)
				return
			}
			require.Contains(t, tc.want, got)
		})
	}
}

// The Inference Extension's scorer, selectable by name: its fixed LRU
// whatever the server's cache, and affinity that never yields to load.
func TestInferenceExtensionMode(t *testing.T) {
	c := Config{Mode: InferenceExtension, RendezvousFloor: new(1.0)}
	c.SetDefaults()
	s, err := New(c)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	eps := endpoints(3)
	for i := range eps {
		eps[i].CacheTokens = 16 // one block: learned mode would forget at once
	}
	first := blocks(4, "first")
	s.Picked(cycle("m", first), &eps[0])
	s.Picked(cycle("m", blocks(4, "second")), &eps[0])
	s.index.Flush()
	eps[0].Waiting = 50 // far beyond any slack
	require.Equal(t, []float64{1, 0, 0}, score(s, cycle("m", first), eps), "remembered, and no rendezvous floor")
}

// Two proxies that never talk place a prompt neither has sent on the same
// endpoint, and spill it to the same next one: the rendezvous floor.
func TestLearnedRendezvousFloorAgreesAcrossProxies(t *testing.T) {
	proxy := func(floor float64) *Scorer {
		c := Config{Mode: Learned, RendezvousFloor: &floor}
		c.SetDefaults()
		s, err := New(c)
		require.NoError(t, err)
		t.Cleanup(s.Close)
		return s
	}
	a, b := proxy(1), proxy(1)
	eps := endpoints(8)
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	seenOnce(a, "m", prompt, eps)
	seenOnce(b, "m", prompt, eps)
	first := preferred(score(a, cycle("m", prompt), eps))
	require.GreaterOrEqual(t, first, 0)
	require.Equal(t, first, preferred(score(b, cycle("m", prompt), eps)))

	eps[first].Waiting = 3 // beyond queueSlack: both spill to the same one
	second := preferred(score(a, cycle("m", prompt), eps))
	require.NotEqual(t, first, second)
	require.GreaterOrEqual(t, second, 0)
	require.Equal(t, second, preferred(score(b, cycle("m", prompt), eps)))

	// Once a proxy has sent it somewhere, that endpoint scores too.
	eps[first].Waiting = 0
	a.Picked(cycle("m", prompt), &eps[second])
	a.index.Flush()
	got := score(a, cycle("m", prompt), eps)
	require.Equal(t, 1.0, got[first])
	require.Equal(t, 1.0, got[second])

	// Without the floor a prompt no one sent scores nowhere.
	require.Equal(t, make([]float64, 8), score(proxy(0), cycle("m", prompt), eps))
}

// With a load bound, affinity holds only on an endpoint whose requests
// (running, waiting and sent since the scrape) are within loadBound times
// the mean plus one; beyond it the rendezvous preference moves on.
func TestLoadBound(t *testing.T) {
	c := Config{Mode: Rendezvous, LoadBound: 1.25}
	c.SetDefaults()
	s, err := New(c)
	require.NoError(t, err)
	eps := endpoints(4)
	prompt := chat(strings.Repeat("shared system prompt ", 40), "hi")
	seenOnce(s, "m", prompt, eps)
	home := preferred(score(s, cycle("m", prompt), eps))
	for _, tc := range []struct {
		name           string
		running, other float64 // home's running, every other endpoint's
		stays          bool
	}{
		{name: "idle pool: one request is within the bound", running: 1, stays: true},
		// mean (4+2+2+2)/4 = 2.5: bound 1.25 × 2.5 + 1 = 4.125
		{name: "within the bound", running: 4, other: 2, stays: true},
		// mean (5+2+2+2)/4 = 2.75: bound 4.44
		{name: "beyond the bound", running: 5, other: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range eps {
				eps[i].Running, eps[i].Capacity = tc.other, 100 // slots to spare: no queue
			}
			eps[home].Running = tc.running
			got := preferred(score(s, cycle("m", prompt), eps))
			if tc.stays {
				require.Equal(t, home, got)
			} else {
				require.NotEqual(t, home, got)
				require.GreaterOrEqual(t, got, 0)
			}
		})
	}
}

func TestSeenKeys(t *testing.T) {
	var s seenKeys
	require.False(t, s.seenBefore(7, false), "a dry look")
	require.False(t, s.seenBefore(7, false), "a dry look remembers nothing")
	require.False(t, s.seenBefore(42, true), "first sight")
	require.True(t, s.seenBefore(42, true))
	require.True(t, s.seenBefore(42, false))
	require.False(t, s.seenBefore(0, true), "0 is a key like any other")
	require.True(t, s.seenBefore(0, true))
	// A key in the same slot takes it over: the older one is forgotten.
	other := uint64(42) + 2*seenSlots
	require.False(t, s.seenBefore(other, true))
	require.False(t, s.seenBefore(42, true))
}
