package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// chatBody returns a chat request of about size bytes: a system prompt and
// turns of mixed ASCII, escapes and multibyte text, the model named last so
// that nothing can stop early.
func chatBody(size int) []byte {
	const turn = `Summarise the \"quarterly\" report, line by line:\n- revenue grew 12%% — ünïcödé 日本語 🚀; the rest is plain ASCII text to fill space. `
	var b strings.Builder
	b.WriteString(`{"messages":[{"role":"system","content":"You are a careful analyst."}`)
	for i := 0; b.Len() < size-200; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		fmt.Fprintf(&b, `,{"role":"%s","content":"`, role)
		for b.Len() < size-200 && b.Len()%4096 < 3000 {
			b.WriteString(turn)
		}
		b.WriteString(`"}`)
	}
	b.WriteString(`],"temperature":0.2,"max_tokens":512,"stream":true,"stream_options":{"include_usage":true},"model":"llama-3-8b"}`)
	return []byte(b.String())
}

// bigStringsBody returns a chat request of about size bytes whose text is
// in four long strings: paragraphs of prose (ASCII with some multibyte
// text) ended by an escaped newline, the shape of a pasted document.
func bigStringsBody(size int) []byte {
	const para = `The quarterly report covers revenue, costs and the outlook for the next year; ünïcödé 日本語 🚀 appear now and then, but most of it is plain ASCII prose. `
	var b strings.Builder
	b.WriteString(`{"messages":[{"role":"system","content":"You are a careful analyst."}`)
	for i := range 4 {
		fmt.Fprintf(&b, `,{"role":"user","content":"Document %d:\n`, i)
		for b.Len() < (i+1)*(size-200)/4 {
			for range 8 {
				b.WriteString(para)
			}
			b.WriteString(`\n\n`)
		}
		b.WriteString(`"}`)
	}
	b.WriteString(`],"max_tokens":512,"stream":true,"stream_options":{"include_usage":true},"model":"llama-3-8b"}`)
	return []byte(b.String())
}

// smallStringsBody returns a chat request of about size bytes made of many
// short messages: keys and values of a few bytes each.
func smallStringsBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"messages":[{"role":"system","content":"Be brief."}`)
	for i := 0; b.Len() < size-200; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		fmt.Fprintf(&b, `,{"role":"%s","content":"ok %d","name":"u%d"}`, role, i, i%7)
	}
	b.WriteString(`],"max_tokens":512,"stream":true,"stream_options":{"include_usage":true},"model":"llama-3-8b"}`)
	return []byte(b.String())
}

// proseChatBody returns the ABI benchmark's request (test/harness
// ChatBody): a system message and one user string of plain prose filling
// about size bytes, as encoding/json writes it (keys sorted, model third).
func proseChatBody(size int) []byte {
	const prose = "The quick brown fox jumps over the lazy dog while the inference pool balances requests across servers. "
	mk := func(n int) []byte {
		b, _ := json.Marshal(map[string]any{
			"model": "llama-3-8b",
			"messages": []map[string]string{
				{"role": "system", "content": "You are a helpful assistant that answers briefly."},
				{"role": "user", "content": strings.Repeat(prose, n/len(prose)+1)[:n]},
			},
			"max_tokens":  64,
			"temperature": 0.2,
		})
		return b
	}
	b := mk(size)
	return mk(size - (len(b) - size))
}

func BenchmarkRequestPath(b *testing.B) {
	c := mustParse(b, `{"models":[{"name":"llama-3-8b"}]}`)
	for _, size := range []struct {
		name string
		body []byte
	}{
		{"1KiB", chatBody(1 << 10)}, {"4KiB-prose", proseChatBody(4 << 10)}, {"100KiB", chatBody(100 << 10)}, {"1MiB", chatBody(1 << 20)},
		{"1MiB-bigstrings", bigStringsBody(1 << 20)}, {"1MiB-smallstrings", smallStringsBody(1 << 20)},
	} {
		body := size.body
		b.Run("body="+size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				d, err := c.Decide(EndpointChatCompletions, body, "")
				if err != nil || d.Model != "llama-3-8b" || d.Body != nil || len(d.Prompt) < len(body)/2 {
					b.Fatal(err, d.Model)
				}
			}
		})
	}
}

// BenchmarkRequestRewrite is the request path when the body must change:
// model rewritten and include_usage added.
func BenchmarkRequestRewrite(b *testing.B) {
	c := mustParse(b, `{"rewrites":[{"model":"llama-3-8b","targets":[{"model":"llama-3-8b-lora-v2"}]}]}`)
	body := []byte(strings.Replace(string(chatBody(100<<10)), `"stream_options":{"include_usage":true},`, "", 1))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		d, err := c.Decide(EndpointChatCompletions, body, "")
		if err != nil || d.Body == nil {
			b.Fatal(err)
		}
	}
}

// sseStream returns a stream of n events in the simulator's format: n-2
// content events, the usage event and [DONE].
func sseStream(n int) []byte {
	var b strings.Builder
	for i := range n - 2 {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-5fbbd30b-162d-50f5-b8f2-f2d1f4c11ec4","model":"acme-test-7b","object":"chat.completion.chunk","created":1795669832,"usage":null,"choices":[{"index":0,"finish_reason":null,"delta":{"content":"tok%d "}}]}`+"\n\n", i)
	}
	fmt.Fprintf(&b, `data: {"id":"chatcmpl-5fbbd30b-162d-50f5-b8f2-f2d1f4c11ec4","model":"acme-test-7b","object":"chat.completion.chunk","created":1795669832,"usage":{"prompt_tokens":11,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0}},"choices":[]}`+"\n\n", n-2, n+9)
	b.WriteString("data: [DONE]\n\n")
	return []byte(b.String())
}

// BenchmarkSSEUsage meters the 1,000-event stream; varying: the same with a
// member after the text that changes in every event (as OpenAI's
// "obfuscation"), so that no event repeats the one before but for its text
// and each is read in full.
func BenchmarkSSEUsage(b *testing.B) {
	now := time.Now()
	for _, c := range []struct {
		name   string
		stream []byte
	}{
		{"events=1000", sseStream(1000)},
		{"events=1000-varying", withObfuscation(sseStream(1000))},
	} {
		stream := c.stream
		chunks := chunked(stream, 4<<10)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				m := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
				for _, c := range chunks {
					m.Write(c, now)
				}
				if r := m.Finish(now); r.Usage.OutputTokens != 998 || r.ContentEvents != 998 {
					b.Fatal(r)
				}
			}
		})
	}
}

// withObfuscation adds to each content event of a stream an "obfuscation"
// member after its choices, a different value each time.
func withObfuscation(stream []byte) []byte {
	parts := bytes.Split(stream, []byte(`"}}]}`))
	var out []byte
	for i, p := range parts {
		if i > 0 {
			out = fmt.Appendf(out, `"}}],"obfuscation":"%x"}`, i)
		}
		out = append(out, p...)
	}
	return out
}

// BenchmarkResponseJSON accounts an unstreamed chat response with usage
// with a Meter kept and Reset, as the module does: the fixture and the
// answer BenchmarkABIRoundTrip meters, in one chunk, and the fixture cut
// in two.
func BenchmarkResponseJSON(b *testing.B) {
	fixture := readFixture(b, "openai/chat_completion.json")
	now := time.Now()
	for _, c := range []struct {
		name   string
		chunks [][]byte
	}{
		{"body=fixture", [][]byte{fixture}},
		{"body=abi", [][]byte{[]byte(abiBenchResponse)}},
		{"body=fixture-halves", [][]byte{fixture[:len(fixture)/2], fixture[len(fixture)/2:]}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bytes.Join(c.chunks, nil))))
			var m Meter
			for b.Loop() {
				m.Reset(EndpointChatCompletions, 200, "application/json", "")
				for _, chunk := range c.chunks {
					m.Write(chunk, now)
				}
				if r := m.Finish(now); !r.HasUsage || r.Model == "" {
					b.Fatal(r)
				}
			}
		})
	}
}

// abiBenchResponse is the answer test/harness's ChatResponseWithUsage
// records, which BenchmarkABIRoundTrip meters.
const abiBenchResponse = `{"id":"chatcmpl-5ff891ad-865c-51ce-ae48-5ff351861c37","model":"sim-model","object":"chat.completion",` +
	`"created":1795670606,"usage":{"prompt_tokens":812,"completion_tokens":29,"total_tokens":841,` +
	`"prompt_tokens_details":{"cached_tokens":0}},"choices":[{"index":0,"finish_reason":"stop","message":` +
	`{"role":"assistant","content":"Testing@, #testing 1$ ,2%,3^, [4&*5], 6~, 7-_ + (8 : 9) / \\ < > ."}}]}`

// BenchmarkModelRestorer rewrites the model name of a 1,000-event stream.
func BenchmarkModelRestorer(b *testing.B) {
	stream := sseStream(1000)
	chunks := chunked(stream, 4<<10)
	out := make([]byte, 0, 8<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		r := NewModelRestorer("alias", "text/event-stream")
		n := 0
		for _, c := range chunks {
			out, _ = r.Write(out[:0], c)
			n += len(out)
		}
		if n != len(stream)-999*len("acme-test-7b")+999*len("alias") { // every event but [DONE] names the model
			b.Fatal(n)
		}
	}
}

func BenchmarkCosts(b *testing.B) {
	c := mustParse(b, `{"costs":[{"metadataKey":"in","type":"input"},{"metadataKey":"k","type":"cel","cel":"model == 'big' ? total_tokens * 10u : total_tokens"}]}`)
	u := CostUsage{Usage: Usage{InputTokens: 100, OutputTokens: 30, TotalTokens: 130}}
	dst := make([]CostValue, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = c.AppendCosts(dst[:0], u, "big", "10.0.0.1:8000", "route"); err != nil || len(dst) != 2 || dst[1].Value != 1300 {
			b.Fatal(dst, err)
		}
	}
}

// BenchmarkMeterGzip accounts the 1,000-event stream of BenchmarkSSEUsage
// gzipped, in 4 KiB chunks of compressed bytes: decoding plus SSE metering.
func BenchmarkMeterGzip(b *testing.B) {
	stream := sseStream(1000)
	chunks := chunked(gzipped(b, stream), 4<<10)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		m := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "gzip")
		for _, c := range chunks {
			m.Write(c, now)
		}
		if r := m.Finish(now); r.Err != nil || r.Usage.OutputTokens != 998 || r.ContentEvents != 998 {
			b.Fatal(r)
		}
	}
}

// BenchmarkBudgetsReserve is the per-request budget work with
// reservations: Key and Check when the request arrives, Reserve when it is
// decided, Settle when it ends, from every P at once.
func BenchmarkBudgetsReserve(b *testing.B) {
	for _, clients := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			budgets := NewBudgets(1<<62, time.Hour, 5_000)
			ids := make([]string, clients)
			for i := range ids {
				ids[i] = fmt.Sprintf("sk-%032d", i)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					k := budgets.Key(ids[i%len(ids)])
					if ok, _ := budgets.Check(k); !ok {
						b.Error("budget spent")
						return
					}
					r, ok, _ := budgets.Reserve(k, 600)
					if !ok {
						b.Error("reservation refused")
						return
					}
					budgets.Settle(r, 100)
					i += 7
				}
			})
		})
	}
}

// BenchmarkRoute is the request-headers step: path normalisation and
// classification. The plain path takes the no-allocation fast path; an
// escaped one is decoded.
func BenchmarkRoute(b *testing.B) {
	c := mustParse(b, `{"passThroughPaths":["/health","/v1/responses/*"]}`)
	for _, tc := range []struct{ name, path string }{
		{"plain", "/v1/chat/completions"},
		{"query", "/v1/chat/completions?api-version=1"},
		{"escaped", "/v1/chat%2Fcompletions"},
		{"passed", "/v1/responses/resp_1"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Route("POST", tc.path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
