package test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// Issue 7's accounting items, through the real library and the ABI host:
// what the client receives, what reaches the server, the cost metadata and
// the budget.

var meteringCosts = []map[string]any{
	{"metadataKey": "llm_input_token", "type": "input"},
	{"metadataKey": "llm_output_token", "type": "output"},
	{"metadataKey": "llm_total_token", "type": "total"},
}

// estimateOf is the documented prompt estimate: request body bytes / 4,
// rounded up.
func estimateOf(body []byte) float64 { return float64((len(body) + 3) / 4) }

// meteringRouter runs ai_router alone on workers threads (no picker: Send falls back to round
// robin over the request's Cluster).
func meteringRouter(t *testing.T, workers int, router map[string]any) *harness.Host {
	h := harness.Start(t, harness.Options{Workers: workers})
	h.MustConfigure(harness.EnvoyChain(t).Only("ai_router").WithJSON("ai_router", router))
	return h
}

// openChat sends a chat request through the chain by hand and waits until
// it leaves for the upstream (or is answered); the test then plays the
// upstream.
func openChat(t *testing.T, h *harness.Host, body []byte, extra ...[2]string) (*harness.Stream, []harness.Event) {
	t.Helper()
	s, err := h.Open(harness.StreamOptions{})
	require.NoError(t, err)
	hdrs := harness.Headers{{":method", "POST"}, {":path", "/v1/chat/completions"}, {":authority", "localhost"},
		{":scheme", "http"}, {"content-type", "application/json"}}
	require.NoError(t, s.RequestHeaders(append(hdrs, extra...), false))
	require.NoError(t, s.RequestData(body, true))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := s.Wait(ctx, func(ev []harness.Event) bool { return harness.RequestLeft(ev) || harness.Answered(ev) })
	require.NoError(t, err)
	return s, ev
}

// clientBody is what reached the client.
func clientBody(s *harness.Stream) []byte {
	var b []byte
	for _, e := range s.Events() {
		if e.Kind == harness.DownData {
			b = append(b, e.Data...)
		}
	}
	return b
}

func sseHeaders(extra ...[2]string) harness.Headers {
	return append(harness.Headers{{":status", "200"}, {"content-type", "text/event-stream"}}, extra...)
}

func chatStreamReq(model string, maxTokens int, includeUsage bool) []byte {
	req := map[string]any{"model": model, "stream": true, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": "tell me a story about a lighthouse"}}}
	if includeUsage {
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(req)
	return b
}

func chunkEvent(content string) string {
	return `data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}` + "\n\n"
}

const usageEvent = `data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\n\n"

// Item 5: the usage chunk ai_router asked for is not shown to a client that
// did not ask for it (a client reading choices[0] of every chunk would
// break), while the accounting still reads it; a client that asked gets it.
func TestRouterStripsInjectedUsageChunk(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{Args: []string{"--inter-token-latency", "1ms"}})
	h := meteringRouter(t, 2, map[string]any{"costs": meteringCosts})
	for _, asked := range []bool{false, true} {
		t.Run(fmt.Sprintf("client asked %v", asked), func(t *testing.T) {
			res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatStreamReq(sim.Model, 8, asked), Cluster: sim.Addrs})
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			require.Contains(t, string(res.UpstreamResponse.Body), `"choices":[]`, "the server sent the usage chunk")
			u := usageOf(t, res.UpstreamResponse.Body)
			costs := costMetadata(t, res)
			require.EqualValues(t, u.TotalTokens, costs["llm_total_token"], "the server's usage is charged")
			require.NotContains(t, costs, "usage_estimate")
			if asked {
				require.Equal(t, res.UpstreamResponse.Body, res.Client.Body)
				return
			}
			require.NotContains(t, string(res.Client.Body), `"choices":[]`)
			require.Empty(t, res.Client.Headers.Values("content-length"))
			events := strings.Split(strings.TrimSuffix(string(res.Client.Body), "\n\n"), "\n\n")
			require.Greater(t, len(events), 2)
			for _, ev := range events {
				data, ok := strings.CutPrefix(ev, "data: ")
				require.True(t, ok, "%q", ev)
				if data == "[DONE]" {
					continue
				}
				var chunk struct{ Choices []json.RawMessage }
				require.NoError(t, json.Unmarshal([]byte(data), &chunk))
				require.NotEmpty(t, chunk.Choices, "every chunk the client gets has choices[0]")
			}
			// Everything else is the server's bytes, in order.
			require.Equal(t, strings.Replace(string(res.UpstreamResponse.Body), usageLineOf(t, res.UpstreamResponse.Body)+"\n\n", "", 1), string(res.Client.Body))
		})
	}

	// A usage chunk split across body frames anywhere still goes, and no
	// more than the unfinished line is held back.
	h2 := meteringRouter(t, 1, map[string]any{})
	stream := chunkEvent("Once") + chunkEvent(" upon") + usageEvent + "data: [DONE]\n\n"
	for _, cut := range []int{len(chunkEvent("Once")) + 3, len(stream) - len(usageEvent) - 12, len(stream) - 20} {
		s, ev := openChat(t, h2, chatStreamReq("m", 8, false))
		require.True(t, harness.RequestLeft(ev))
		require.NoError(t, s.ResponseHeaders(sseHeaders(), false))
		require.NoError(t, s.ResponseData([]byte(stream[:cut]), false))
		first := clientBody(s)
		require.Equal(t, stream[:strings.LastIndexByte(stream[:cut], '\n')+1], strings.Replace(stream[:cut], usageEvent, "", 1)[:len(first)],
			"all complete lines went on at once")
		require.NoError(t, s.ResponseData([]byte(stream[cut:]), true))
		_, err := s.End()
		require.NoError(t, err)
		require.Equal(t, chunkEvent("Once")+chunkEvent(" upon")+"data: [DONE]\n\n", string(clientBody(s)), "cut at %d", cut)
	}
}

func usageLineOf(t *testing.T, body []byte) string {
	for _, line := range strings.Split(string(body), "\n") {
		if strings.Contains(line, `"choices":[]`) {
			return line
		}
	}
	t.Fatal("no usage chunk")
	return ""
}

// Item 3: the server is asked only for encodings the meter reads, and a
// response it cannot read is charged an estimate, said so in the metadata.
func TestRouterMetersOnlyReadableEncodings(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{})
	h := meteringRouter(t, 2, map[string]any{"costs": meteringCosts})
	for _, tt := range []struct{ client, upstream string }{
		{"br", ""},
		{"zstd, br", ""},
		{"gzip, deflate, br, zstd", "gzip"},
		{"br;q=1, gzip;q=0.5", "gzip"},
		{"br, gzip;q=0", ""},
		{"gzip", "gzip"},
	} {
		t.Run(tt.client, func(t *testing.T) {
			res, err := h.Send(context.Background(), &harness.Request{
				Headers: append(harness.Headers{{"accept-encoding", tt.client}}, jsonCT...), Body: chatReq(sim.Model, "hi", 3), Cluster: sim.Addrs})
			require.NoError(t, err)
			require.Equal(t, 200, res.Client.Status)
			require.Equal(t, tt.upstream, res.Received.Headers.Get("Accept-Encoding"))
			require.NotContains(t, costMetadata(t, res), "usage_estimate")
		})
	}

	t.Run("several accept-encoding headers are one list", func(t *testing.T) {
		res, err := h.Send(context.Background(), &harness.Request{
			Headers: append(harness.Headers{{"accept-encoding", "gzip"}, {"accept-encoding", "br"}}, jsonCT...), Body: chatReq(sim.Model, "hi", 3), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, []string{"gzip"}, res.Received.Headers.Values("Accept-Encoding"))
	})

	// A server that answers br anyway (or any encoding the meter does not
	// decode) is not free: the prompt estimate plus max_tokens.
	for _, enc := range []string{"br", "zstd", "deflate"} {
		t.Run("upstream answers "+enc, func(t *testing.T) {
			body := chatReq("m", "hello", 40)
			s, _ := openChat(t, h, body, [2]string{"accept-encoding", enc})
			noise := make([]byte, 300)
			_, _ = rand.Read(noise)
			require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}, {"content-encoding", enc}}, false))
			require.NoError(t, s.ResponseData(noise, true))
			st, err := s.End()
			require.NoError(t, err)
			require.Equal(t, noise, clientBody(s), "the client still gets the server's bytes")
			require.Equal(t, "prompt+max_tokens", st.Metadata["io.envoy.ai_gateway"]["usage_estimate"])
			require.Equal(t, estimateOf(body), st.Metadata["io.envoy.ai_gateway"]["llm_input_token"])
			require.EqualValues(t, 40, st.Metadata["io.envoy.ai_gateway"]["llm_output_token"])
		})
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// Items 4 and 8: a response the meter saw only part of, or gave up on, is
// charged what was seen (or the reservation), exactly once, on every end
// path; the metadata says which estimate it is.
func TestRouterChargesCutAndUnreadableResponses(t *testing.T) {
	h := meteringRouter(t, 2, map[string]any{"costs": meteringCosts, "defaultMaxTokens": 500})
	bomb := gzipBytes(t, append(append([]byte(`{"x":"`), bytes.Repeat([]byte{' '}, 64<<20)...), `","usage":{"prompt_tokens":1,"completion_tokens":1}}`...))
	require.Less(t, len(bomb), 128<<10)

	for _, tt := range []struct {
		name      string
		maxTokens int // 0: none in the request
		play      func(t *testing.T, s *harness.Stream) (*harness.StreamState, error)
		estimate  string  // usage_estimate; "" counted
		output    float64 // llm_output_token
	}{
		{name: "client gone mid-stream", maxTokens: 100, estimate: "prompt+streamed", output: 3,
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) {
				require.NoError(t, s.ResponseHeaders(sseHeaders(), false))
				require.NoError(t, s.ResponseData([]byte(chunkEvent("a")+chunkEvent("b")+chunkEvent("c")), false))
				return s.Reset()
			}},
		{name: "server ignores include_usage", maxTokens: 100, estimate: "prompt+streamed", output: 11, // 42 bytes of content / 4, rounded up
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) {
				require.NoError(t, s.ResponseHeaders(sseHeaders(), false))
				require.NoError(t, s.ResponseData([]byte(chunkEvent("All work and no play makes")+chunkEvent(" Jack a dull boy")+"data: [DONE]\n\n"), true))
				return s.End()
			}},
		{name: "reset before the response", maxTokens: 100, estimate: "prompt", output: 0,
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) { return s.Reset() }},
		{name: "JSON without usage", maxTokens: 100, estimate: "prompt+max_tokens", output: 100,
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) {
				require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}}, false))
				require.NoError(t, s.ResponseData([]byte(`{"choices":[{"message":{"content":"hi"}}]}`), true))
				return s.End()
			}},
		{name: "no max_tokens: the configured default", estimate: "prompt+max_tokens", output: 500,
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) {
				require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "text/plain"}}, false))
				require.NoError(t, s.ResponseData([]byte(`hello`), true))
				return s.End()
			}},
		{name: "gzip bomb", maxTokens: 100, estimate: "prompt+max_tokens", output: 100,
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) {
				require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}, {"content-encoding", "gzip"}}, false))
				for off := 0; off < len(bomb); off += 16 << 10 {
					require.NoError(t, s.ResponseData(bomb[off:min(off+16<<10, len(bomb))], false))
				}
				require.NoError(t, s.ResponseData(nil, true))
				return s.End()
			}},
		{name: "usage counted", maxTokens: 100, output: 3,
			play: func(t *testing.T, s *harness.Stream) (*harness.StreamState, error) {
				require.NoError(t, s.ResponseHeaders(sseHeaders(), false))
				require.NoError(t, s.ResponseData([]byte(chunkEvent("a")+usageEvent+"data: [DONE]\n\n"), true))
				return s.End()
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := map[string]any{"model": "m", "stream": true, "messages": []map[string]string{{"role": "user", "content": "write"}}}
			if tt.maxTokens > 0 {
				req["max_tokens"] = tt.maxTokens
			}
			body, _ := json.Marshal(req)
			s, ev := openChat(t, h, body)
			require.True(t, harness.RequestLeft(ev))
			st, err := tt.play(t, s)
			require.NoError(t, err)
			md := st.Metadata["io.envoy.ai_gateway"]
			input := estimateOf(body)
			if tt.estimate == "" {
				require.NotContains(t, md, "usage_estimate")
				input = 9
			} else {
				require.Equal(t, tt.estimate, md["usage_estimate"])
			}
			require.Equal(t, input, md["llm_input_token"])
			require.Equal(t, tt.output, md["llm_output_token"])
			require.Equal(t, input+tt.output, md["llm_total_token"])
		})
	}

	t.Run("an error status costs nothing", func(t *testing.T) {
		s, _ := openChat(t, h, chatReq("m", "x", 10))
		require.NoError(t, s.RouterReply(503, []byte("no healthy upstream"), "no_healthy_upstream"))
		st, err := s.End()
		require.NoError(t, err)
		require.Empty(t, st.Metadata["io.envoy.ai_gateway"])
	})
}

// Item 4: a reservation is settled exactly once on every end path: neither
// leaked (the key would stay blocked) nor charged twice.
func TestRouterSettlesReservationOnce(t *testing.T) {
	body := chatReq("m", "count", 60)
	est := int(estimateOf(body))
	reservation := est + 60
	// Two reservations fit, three do not; after a settled request that
	// was charged only its prompt, exactly one more reservation fits.
	budget := 2*reservation + est
	for _, tt := range []struct {
		name string
		end  func(t *testing.T, s *harness.Stream)
	}{
		{"reset before the response", func(t *testing.T, s *harness.Stream) {
			_, err := s.Reset()
			require.NoError(t, err)
		}},
		{"router's local reply", func(t *testing.T, s *harness.Stream) {
			require.NoError(t, s.RouterReply(503, []byte("no healthy upstream"), "no_healthy_upstream"))
			_, err := s.End()
			require.NoError(t, err)
		}},
		{"reset mid-stream", func(t *testing.T, s *harness.Stream) {
			require.NoError(t, s.ResponseHeaders(sseHeaders(), false))
			require.NoError(t, s.ResponseData([]byte(`data: {"choices":[{"delta":{"content":""}}]}`+"\n\n"), false))
			_, err := s.Reset()
			require.NoError(t, err)
		}},
		{"normal end then complete", func(t *testing.T, s *harness.Stream) {
			require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}}, false))
			require.NoError(t, s.ResponseData([]byte(fmt.Sprintf(`{"usage":{"prompt_tokens":%d,"completion_tokens":0}}`, est)), true))
			_, err := s.End()
			require.NoError(t, err)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := meteringRouter(t, 1, map[string]any{"budget": map[string]any{"header": "x-api-key", "tokens": budget, "window": "1h"}})
			key := [2]string{"x-api-key", "tenant"}
			s1, ev := openChat(t, h, body, key)
			require.True(t, harness.RequestLeft(ev))
			tt.end(t, s1)
			// Spent: est (prompt) or 0 (503). Two more reservations fit only
			// if s1's was released and it was charged at most once.
			s2, ev := openChat(t, h, body, key)
			require.True(t, harness.RequestLeft(ev), "s1's reservation leaked: %s", harness.Summary(ev))
			s3, ev := openChat(t, h, body, key)
			require.True(t, harness.RequestLeft(ev), "s1 charged more than its prompt: %s", harness.Summary(ev))
			s4, ev := openChat(t, h, body, key)
			require.False(t, harness.RequestLeft(ev), "a third reservation in flight is over the budget")
			require.Equal(t, 429, s4.Client().Status)
			require.Equal(t, "1", s4.Client().Headers.Get("retry-after"), "in-flight requests will settle")
			for _, s := range []*harness.Stream{s2, s3, s4} {
				_, err := s.Reset()
				require.NoError(t, err)
			}
		})
	}
}

// Item 4: many concurrent requests of one key, on several workers, against
// a slow upstream: they are not all let through before any is charged. The
// upstream reports exactly what each request reserved (prompt estimate +
// max_tokens), so the spent total must stay within the budget: no overshoot
// at all. (Before reservations, every request passed the check at once.)
func TestRouterBudgetHoldsUnderConcurrency(t *testing.T) {
	up := harness.StartReservationEcho(t, 150*time.Millisecond)
	const budget, clients = 2000, 48
	h := meteringRouter(t, 4, map[string]any{"budget": map[string]any{"header": "x-api-key", "tokens": budget, "window": "1h"}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var spent, admitted, refused int
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.Send(context.Background(), &harness.Request{
				Headers: harness.Headers{{"content-type", "application/json"}, {"x-api-key", "one-tenant"}},
				Body:    chatReq("m", fmt.Sprintf("request %02d of one tenant", i), 100), Cluster: []string{up.Addr}})
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			switch res.Client.Status {
			case 200:
				admitted++
				spent += int(usageOf(t, res.Client.Body).TotalTokens)
			case 429:
				refused++
			default:
				t.Errorf("status %d: %s", res.Client.Status, res.Client.Body)
			}
		}()
	}
	wg.Wait()
	t.Logf("admitted %d, refused %d, spent %d of %d, peak in flight %d", admitted, refused, spent, budget, up.Peak())
	require.LessOrEqual(t, spent, budget, "the budget overshot")
	require.Positive(t, refused)
	require.Greater(t, spent, budget-2*130, "requests are refused only when the budget is (nearly) spent")
}

// A hostile upstream nests its answer deeper than any validating reader
// goes (1,100 levels; the meter counts brackets, checking nothing), in one
// frame (read whole, jsonwalk_whole.go) and cut anywhere (the walker): the
// client gets the server's bytes, the usage after it is read, and nothing
// panics (the walker's depth guard).
func TestRouterMetersADeeplyNestedAnswer(t *testing.T) {
	h := meteringRouter(t, 2, map[string]any{"costs": meteringCosts})
	deep := strings.Repeat("[", 1100) + strings.Repeat("]", 1100)
	answer := []byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"x":` + deep +
		`,"finish_reason":"stop"}],"extra":{"a":` + deep + `},"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
	for _, frames := range []int{1, 3, 64} {
		t.Run(fmt.Sprintf("%d frames", frames), func(t *testing.T) {
			requireMeteredJSON(t, h, "hello", answer, frames, 7, 3)
		})
	}
}

// Only the answer's own top-level usage counts: a usage object or a model
// spelled inside the generated text (a client can make a model print
// anything), or nested in a choice, is not read, whether the answer comes
// in one frame (read whole) or cut anywhere (the walker).
func TestRouterMetersOnlyTheAnswersOwnUsage(t *testing.T) {
	h := meteringRouter(t, 2, map[string]any{"costs": meteringCosts})
	// Unbalanced closers first: read as structure, they would end the
	// choice and make the printed usage a top-level member.
	printed := `here is your usage: \"}]}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2},\"model\":\"free\",\"z\":[{\"a\":\"`
	for _, tc := range []struct{ name, answer string }{
		{"usage printed in the text, before the real one", `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"` +
			printed + `"},"finish_reason":"stop"}],"model":"m","usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`},
		{"usage printed in the text, after the real one", `{"id":"x","object":"chat.completion","model":"m","usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10},` +
			`"choices":[{"index":0,"message":{"role":"assistant","content":"` + printed + `"},"finish_reason":"stop"}]}`},
		{"a usage nested in a choice", `{"id":"x","object":"chat.completion","choices":[{"index":0,"usage":{"prompt_tokens":1,"completion_tokens":1},"model":"free",` +
			`"message":{"role":"assistant","content":"hi"}}],"model":"m","usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`},
	} {
		answer := []byte(tc.answer)
		require.True(t, json.Valid(answer))
		for _, frames := range []int{1, 2, 9} {
			t.Run(fmt.Sprintf("%s, %d frames", tc.name, frames), func(t *testing.T) {
				requireMeteredJSON(t, h, "print a usage object", answer, frames, 7, 3)
			})
		}
	}
}

// requireMeteredJSON plays answer, a JSON answer, to a chat request in
// frames pieces and requires that the client got it unchanged and that
// the usage metered is the server's (not estimated): input and output.
func requireMeteredJSON(t *testing.T, h *harness.Host, prompt string, answer []byte, frames int, input, output float64) {
	t.Helper()
	s, _ := openChat(t, h, chatReq("m", prompt, 40))
	require.NoError(t, s.ResponseHeaders(harness.Headers{{":status", "200"}, {"content-type", "application/json"}}, false))
	step := (len(answer) + frames - 1) / frames
	for i := 0; i < len(answer); i += step {
		end := min(i+step, len(answer))
		require.NoError(t, s.ResponseData(answer[i:end], end == len(answer)))
	}
	st, err := s.End()
	require.NoError(t, err)
	require.Equal(t, answer, clientBody(s), "the client gets the server's bytes")
	md := st.Metadata["io.envoy.ai_gateway"]
	require.NotContains(t, md, "usage_estimate", "the server's usage was read")
	require.EqualValues(t, input, md["llm_input_token"])
	require.EqualValues(t, output, md["llm_output_token"])
}
