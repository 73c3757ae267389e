package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

const upstreamChat = `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

func writeKey(t *testing.T, path, key string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(key), 0o600))
}

func upstreamConfig(t testing.TB, raw string) (*upstreamFilterConfig, error) {
	t.Helper()
	p, err := filterconfig.Parse(filterconfig.AIUpstream, []byte(raw))
	if err != nil {
		return nil, err
	}
	return newUpstreamFilterConfig(p.AIUpstream)
}

// newAttempt is one attempt's filter on a stream whose request headers
// (shared by every attempt) and filter state the test keeps.
func newAttempt(cfg *upstreamFilterConfig, s *fakeStream) *aiUpstreamFilter {
	return &aiUpstreamFilter{cfg: cfg, h: s, s: abi.NewStream(s)}
}

func newUpstreamStream(headers ...[2]string) *fakeStream {
	s := &fakeStream{data: map[string]any{}, metadata: map[string]any{}, filterState: map[string][]byte{}, hostMetadata: map[string]string{}}
	s.reqHeaders.kv = append([][2]string{{":method", "POST"}, {":path", "/v1/chat/completions"},
		{"content-type", "application/json"}, {"content-length", "74"}}, headers...)
	return s
}

// runAttempt drives one attempt's request hooks with body as one frame.
func runAttempt(t *testing.T, f *aiUpstreamFilter, s *fakeStream, body string) {
	t.Helper()
	s.buffered.b = nil // each attempt has its own buffer
	require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s.reqHeaders, false), "headers held for the body")
	frame := &fakeBody{b: []byte(body)}
	require.Equal(t, shared.BodyStatusContinue, f.OnRequestBody(frame, true), "reply: %s", s.lastReply.body)
	s.buffered.b = frame.b // what leaves the attempt
}

func headerMap(h *fakeHeaders) map[string]string {
	out := map[string]string{}
	for _, kv := range h.kv {
		out[kv[0]] = kv[1]
	}
	return out
}

func TestAIUpstreamConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	writeKey(t, key, "sk-1\n")
	empty := filepath.Join(dir, "empty")
	writeKey(t, empty, " \n")
	bad := filepath.Join(dir, "bad")
	writeKey(t, bad, "sk-with\r\ninjected: header")
	tests := []struct{ name, raw, want string }{
		{"no backends", `{}`, "backends: at least one"},
		{"name required", `{"backends":[{"schema":"openai"}]}`, "backends[0].name: required"},
		{"duplicate name", `{"backends":[{"name":"a","schema":"openai"},{"name":"a","schema":"openai"}]}`, "backends[1].name"},
		{"schema named", `{"backends":[{"name":"a","schema":"nope"}]}`, "backends[0].schema"},
		{"translator field named", `{"backends":[{"name":"a","schema":"openai","maxTokens":5}]}`, "backends[0].maxTokens"},
		{"unknown field named", `{"backends":[{"name":"a","schema":"openai","apiKey":"inline"}]}`, `backends[0]: unknown field "apiKey"`},
		{"default names a backend", `{"backends":[{"name":"a","schema":"openai"}],"defaultBackend":"b"}`, "defaultBackend"},
		{"apiKeyFile type", `{"backends":[{"name":"a","schema":"openai","apiKeyFile":1}]}`, "backends[0].apiKeyFile: must be a string"},
		{"missing key file", `{"backends":[{"name":"a","schema":"openai","apiKeyFile":"` + filepath.Join(dir, "none") + `"}]}`, "backends[0].apiKeyFile"},
		{"empty key file", `{"backends":[{"name":"a","schema":"openai","apiKeyFile":"` + empty + `"}]}`, "is empty"},
		{"key that would split a header", `{"backends":[{"name":"a","schema":"openai"},{"name":"b","schema":"anthropic","apiKeyFile":"` + bad + `"}]}`, "backends[1].apiKeyFile"},
		{"top-level unknown", `{"backend":[]}`, `unknown field "backend"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := upstreamConfig(t, tc.raw)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "injected", "the key's content is never in an error")
		})
	}
	cfg, err := upstreamConfig(t, `{"backends":[{"name":"a","schema":"openai","apiKeyFile":"`+key+`"}]}`)
	require.NoError(t, err)
	require.NotNil(t, cfg.def, "the only backend is the default")
}

// Retries share the request header map: a second attempt, to another
// backend, must end up with exactly the headers a first attempt to that
// backend would have, whatever the first attempt wrote.
func TestAIUpstreamHeadersOwnedAcrossAttempts(t *testing.T) {
	dir := t.TempDir()
	ak, ok := filepath.Join(dir, "a"), filepath.Join(dir, "o")
	writeKey(t, ak, "sk-ant")
	writeKey(t, ok, "sk-oai")
	cfg, err := upstreamConfig(t, `{"backends":[
		{"name":"claude","schema":"anthropic","apiKeyFile":"`+ak+`"},
		{"name":"azure","schema":"azure_openai","apiVersion":"2024-10-21","apiKeyFile":"`+ok+`"},
		{"name":"pool","schema":"openai"}],"defaultBackend":"pool"}`)
	require.NoError(t, err)
	client := [][2]string{{"authorization", "Bearer client"}, {"x-api-key", "client"}, {"anthropic-beta", "x"}, {"accept-encoding", "gzip"}}

	alone := func(backend string) (map[string]string, string) {
		s := newUpstreamStream(client...)
		if backend != "" {
			s.hostMetadata[filterconfig.HostBackendNamespace+"/"+filterconfig.HostBackendKey] = backend
		}
		runAttempt(t, newAttempt(cfg, s), s, upstreamChat)
		return headerMap(&s.reqHeaders), string(s.buffered.b)
	}
	for _, first := range []string{"claude", "azure", "pool"} {
		for _, second := range []string{"claude", "azure", "", "pool"} {
			t.Run(first+" then "+second, func(t *testing.T) {
				s := newUpstreamStream(client...)
				s.hostMetadata[filterconfig.HostBackendNamespace+"/"+filterconfig.HostBackendKey] = first
				runAttempt(t, newAttempt(cfg, s), s, upstreamChat)
				if second == "" {
					delete(s.hostMetadata, filterconfig.HostBackendNamespace+"/"+filterconfig.HostBackendKey)
				} else {
					s.hostMetadata[filterconfig.HostBackendNamespace+"/"+filterconfig.HostBackendKey] = second
				}
				// The retry gets a fresh copy of the original body.
				runAttempt(t, newAttempt(cfg, s), s, upstreamChat)
				wantHeaders, wantBody := alone(second)
				got := headerMap(&s.reqHeaders)
				// accept-encoding too: an Anthropic attempt removed it, a
				// retry to the pool gets the original back.
				require.Equal(t, wantHeaders, got)
				require.Equal(t, wantBody, string(s.buffered.b))
				require.NotContains(t, got["authorization"]+got["x-api-key"], "client")
			})
		}
	}
}

// The key file is read again when it changes (checked at most once a
// second); a change to an empty or missing file keeps the previous key.
func TestAIUpstreamKeyRotation(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	writeKey(t, key, "sk-one\n")
	cfg, err := upstreamConfig(t, `{"backends":[{"name":"a","schema":"openai","apiKeyFile":"`+key+`"}]}`)
	require.NoError(t, err)
	now := time.Now()
	cfg.now = func() time.Time { return now }
	auth := func() (string, []string) {
		s := newUpstreamStream()
		runAttempt(t, newAttempt(cfg, s), s, upstreamChat)
		return headerMap(&s.reqHeaders)["authorization"], s.logs
	}
	got, _ := auth()
	require.Equal(t, "Bearer sk-one", got)

	writeKey(t, key, "sk-two-longer\n")
	got, _ = auth()
	require.Equal(t, "Bearer sk-one", got, "not checked again within a second")
	now = now.Add(2 * time.Second)
	got, _ = auth()
	require.Equal(t, "Bearer sk-two-longer", got)

	for _, broken := range []func(){
		func() { writeKey(t, key, "") },
		func() { require.NoError(t, os.Remove(key)) },
	} {
		broken()
		now = now.Add(2 * time.Second)
		got, logs := auth()
		require.Equal(t, "Bearer sk-two-longer", got, "a broken file keeps the previous key")
		require.NotEmpty(t, logs)
		require.NotContains(t, strings.Join(logs, "\n"), "sk-two")
	}
	writeKey(t, key, "sk-three")
	now = now.Add(2 * time.Second)
	got, _ = auth()
	require.Equal(t, "Bearer sk-three", got)
}

func TestAIUpstreamUnknownHostBackend(t *testing.T) {
	cfg, err := upstreamConfig(t, `{"backends":[{"name":"a","schema":"openai"},{"name":"b","schema":"openai"}]}`)
	require.NoError(t, err)
	for name, md := range map[string]map[string]string{
		"host names another backend": {filterconfig.HostBackendNamespace + "/" + filterconfig.HostBackendKey: "zzz"},
		"no name and no default":     {},
	} {
		t.Run(name, func(t *testing.T) {
			s := newUpstreamStream()
			s.hostMetadata = md
			require.Equal(t, shared.HeadersStatusStop, newAttempt(cfg, s).OnRequestHeaders(&s.reqHeaders, false))
			require.Equal(t, 1, s.replies)
			require.EqualValues(t, 500, s.lastReply.status)
			require.NotContains(t, string(s.lastReply.body), "zzz")
		})
	}
}

// A response is translated chunk by chunk; the original :path is kept in
// the filter state by the first attempt only.
func TestAIUpstreamResponseAndOriginalPath(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	writeKey(t, k, "sk-ant")
	cfg, err := upstreamConfig(t, `{"backends":[{"name":"claude","schema":"anthropic","apiKeyFile":"`+k+`"}]}`)
	require.NoError(t, err)
	s := newUpstreamStream()
	f := newAttempt(cfg, s)
	runAttempt(t, f, s, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	require.Equal(t, "/v1/chat/completions\n", string(s.filterState[originalRequestKey]), "no accept-encoding")
	require.Equal(t, "/v1/messages", headerMap(&s.reqHeaders)[":path"])

	s.respHeaders.kv = [][2]string{{":status", "529"}, {"content-type", "application/json"}}
	require.Equal(t, shared.HeadersStatusStop, f.OnResponseHeaders(&s.respHeaders, false), "an error's headers wait for its body")
	require.Equal(t, "503", headerMap(&s.respHeaders)[":status"], "Anthropic's overloaded is OpenAI's 503")
	errBody := `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	b := &fakeBody{b: []byte(errBody[:20])}
	require.Equal(t, shared.BodyStatusStopAndBuffer, f.OnResponseBody(b, false))
	require.Empty(t, b.b, "an error body is translated whole")
	b = &fakeBody{b: []byte(errBody[20:])}
	require.Equal(t, shared.BodyStatusContinue, f.OnResponseBody(b, true))
	require.JSONEq(t, `{"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}`, string(b.b))
	f.OnDestroy()

	// The second attempt reads the original, though :path is /v1/messages.
	f2 := newAttempt(cfg, s)
	runAttempt(t, f2, s, upstreamChat)
	require.Equal(t, "/v1/messages", headerMap(&s.reqHeaders)[":path"])
	require.Equal(t, "/v1/chat/completions", f2.orig.Path)
}

// BenchmarkAIUpstream is one attempt's Go side (fake host, no C ABI): a 4
// KiB chat request and a JSON response with usage, through ai_upstream
// for an OpenAI-compatible backend with a key file (the pool's case: path
// and credentials only) and for each provider whose API is translated
// both ways (Anthropic, Gemini, Bedrock: SigV4-signed, the SDK's signer
// included), plus an Anthropic stream (the fixture's 15 events, one
// chunk). The fake host's body frames allocate too, in every case.
//
//	go test ./module -run '^$' -bench AIUpstream -count 6
func BenchmarkAIUpstream(b *testing.B) {
	dir := b.TempDir()
	k := filepath.Join(dir, "k")
	require.NoError(b, os.WriteFile(k, []byte("sk-bench"), 0o600))
	aws := filepath.Join(dir, "aws")
	require.NoError(b, os.WriteFile(aws, []byte("[default]\naws_access_key_id = AKIDBENCH\naws_secret_access_key = secret\n"), 0o600))
	req := benchRequest(4 << 10)
	streamReq := append(bytes.TrimSuffix(bytes.Clone(req), []byte("}")), `,"stream":true,"stream_options":{"include_usage":true}}`...)
	anthropicStream, err := os.ReadFile("../transform/testdata/anthropic/stream_tools.sse")
	require.NoError(b, err)
	anthropicResp := []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello there, how can I help?"}],` +
		`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1024,"output_tokens":9}}`)
	geminiResp := []byte(`{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello there, how can I help?"}]},"finishReason":"STOP","index":0}],` +
		`"usageMetadata":{"promptTokenCount":1024,"candidatesTokenCount":9,"totalTokenCount":1033},"modelVersion":"gemini-2.5-flash","responseId":"r1"}`)
	bedrockResp := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"Hello there, how can I help?"}]}},` +
		`"stopReason":"end_turn","usage":{"inputTokens":1024,"outputTokens":9,"totalTokens":1033}}`)
	keyed := func(schema string) string {
		return `{"backends":[{"name":"a","schema":"` + schema + `","apiKeyFile":"` + k + `"}]}`
	}
	for _, bc := range []struct {
		name, config string
		req          []byte
		ct           string
		resp         []byte
	}{
		{"openai", keyed("openai"), req, "application/json", benchResponse},
		{"anthropic", keyed("anthropic"), req, "application/json", anthropicResp},
		{"gemini", keyed("gemini"), req, "application/json", geminiResp},
		{"bedrock", `{"backends":[{"name":"a","schema":"aws_bedrock","region":"us-east-1","credentialsFile":"` + aws + `"}]}`, req, "application/json", bedrockResp},
		{"anthropic/stream", keyed("anthropic"), streamReq, "text/event-stream", anthropicStream},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg, err := upstreamConfig(b, bc.config)
			require.NoError(b, err)
			s := newUpstreamStream()
			b.ReportAllocs()
			for b.Loop() {
				s.reset()
				s.reqHeaders.kv = append(s.reqHeaders.kv, [2]string{":method", "POST"}, [2]string{":path", "/v1/chat/completions"},
					[2]string{"content-type", "application/json"}, [2]string{"content-length", "4096"}, [2]string{"authorization", "Bearer client"})
				f := newUpstreamFilter(cfg, s) // pooled, as the factory builds them
				f.OnRequestHeaders(&s.reqHeaders, false)
				body := fakeBody{b: append(s.buffered.b[:0], bc.req...)}
				if f.OnRequestBody(&body, true) != shared.BodyStatusContinue {
					b.Fatalf("refused: %s", s.lastReply.body)
				}
				s.respHeaders.kv = append(s.respHeaders.kv, [2]string{":status", "200"}, [2]string{"content-type", bc.ct})
				f.OnResponseHeaders(&s.respHeaders, false)
				out := fakeBody{b: append([]byte(nil), bc.resp...)}
				f.OnResponseBody(&out, true)
				if !bytes.Contains(out.b, []byte(`"completion_tokens"`)) {
					b.Fatalf("no usage in the answer: %s", out.b)
				}
				f.OnDestroy()
				releaseFilter(f)
			}
		})
	}
}

// Every attempt tells ai_router its backend and provider through the
// dynamic metadata: a retry's replace the first attempt's.
func TestAIUpstreamTellsTheProvider(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	writeKey(t, k, "sk-ant")
	cfg, err := upstreamConfig(t, `{"backends":[
		{"name":"claude","schema":"anthropic","apiKeyFile":"`+k+`"},
		{"name":"azure","schema":"azure_openai","apiVersion":"2024-10-21"},
		{"name":"pool","schema":"openai"}],"defaultBackend":"pool"}`)
	require.NoError(t, err)
	s := newUpstreamStream()
	for _, tc := range []struct{ host, backend, provider string }{
		{"claude", "claude", "anthropic"},
		{"", "pool", "openai"},
		{"azure", "azure", "azure.openai"},
		{"unknown", "azure", "azure.openai"}, // refused: the previous attempt's stay
	} {
		key := filterconfig.HostBackendNamespace + "/" + filterconfig.HostBackendKey
		delete(s.hostMetadata, key)
		if tc.host != "" {
			s.hostMetadata[key] = tc.host
		}
		newAttempt(cfg, s).OnRequestHeaders(&s.reqHeaders, false)
		require.Equal(t, tc.provider, s.metadata["io.envoy.ai_gateway/gen_ai.provider.name"], tc.host)
		require.Equal(t, tc.backend, s.metadata["io.envoy.ai_gateway/backend_name"], tc.host)
	}
}

// The end of a response reaches the translator whichever hook carries it:
// the last body frame, the trailers, or headers that end the stream. What
// it makes of the end goes to the buffered response body (which Envoy sends
// on), once; Anthropic's cache writes are published when usage came.
func TestAIUpstreamResponseEnds(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	writeKey(t, k, "sk-ant")
	message := `{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hi"}],` +
		`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":2,"cache_creation_input_tokens":6}}`
	for _, tc := range []struct {
		name, schema string
		status       string
		run          func(f *aiUpstreamFilter, s *fakeStream) (frames string)
		wantTail     string // in what the buffered response body got ("" nothing)
		wantWrites   any    // the cache_creation_input_tokens metadata (nil: none)
	}{
		{"JSON, then trailers", "anthropic", "200", func(f *aiUpstreamFilter, s *fakeStream) string {
			b := &fakeBody{b: []byte(message)}
			f.OnResponseBody(b, false)
			require.Equal(t, shared.TrailersStatusContinue, f.OnResponseTrailers(&fakeHeaders{}))
			return string(b.b)
		}, `"content":"Hi"`, uint64(6)},
		{"JSON ended by the body, then trailers: once", "anthropic", "200", func(f *aiUpstreamFilter, s *fakeStream) string {
			b := &fakeBody{b: []byte(message)}
			f.OnResponseBody(b, true)
			f.OnResponseTrailers(&fakeHeaders{})
			return string(b.b)
		}, "", uint64(6)},
		{"bare error status", "anthropic", "529", nil, "returned status 529", nil},
		{"OpenAI-compatible, headers only", "openai", "200", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := upstreamConfig(t, `{"backends":[{"name":"a","schema":"`+tc.schema+`","apiKeyFile":"`+k+`"}]}`)
			require.NoError(t, err)
			s := newUpstreamStream()
			f := newAttempt(cfg, s)
			runAttempt(t, f, s, upstreamChat)
			s.respHeaders.kv = [][2]string{{":status", tc.status}, {"content-type", "application/json"}}
			endsHere := tc.run == nil
			want := shared.HeadersStatusContinue
			if !endsHere {
				want = shared.HeadersStatusStop // a JSON answer: held until its end
			}
			require.Equal(t, want, f.OnResponseHeaders(&s.respHeaders, endsHere))
			frames := ""
			if tc.run != nil {
				frames = tc.run(f, s)
			}
			got := string(s.bufferedResponse.b)
			if tc.wantTail == "" {
				require.Empty(t, got)
			} else {
				require.Contains(t, got, tc.wantTail)
			}
			if strings.Contains(tc.name, "once") {
				require.Contains(t, frames, `"content":"Hi"`, "translated by the body hook")
			}
			require.Equal(t, tc.wantWrites, s.metadata["io.envoy.ai_gateway/cache_creation_input_tokens"])
		})
	}
}

// A body translated whole holds the response headers until its end, and
// an error found only there (inside a 200) is the status they go out with.
func TestAIUpstreamHoldsHeadersForWholeBodies(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	writeKey(t, k, "sk-ant")
	for _, tc := range []struct {
		name, body string
		want       string
	}{
		{"an error under a 200", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, "500"},
		{"not a message", `<html>`, "502"},
		{"a message", `{"id":"m","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`, "200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := upstreamConfig(t, `{"backends":[{"name":"a","schema":"anthropic","apiKeyFile":"`+k+`"}]}`)
			require.NoError(t, err)
			s := newUpstreamStream()
			f := newAttempt(cfg, s)
			runAttempt(t, f, s, upstreamChat)
			s.respHeaders.kv = [][2]string{{":status", "200"}, {"content-type", "application/json"}}
			require.Equal(t, shared.HeadersStatusStop, f.OnResponseHeaders(&s.respHeaders, false))
			half := len(tc.body) / 2
			require.Equal(t, shared.BodyStatusStopAndBuffer, f.OnResponseBody(&fakeBody{b: []byte(tc.body[:half])}, false))
			require.Equal(t, shared.BodyStatusContinue, f.OnResponseBody(&fakeBody{b: []byte(tc.body[half:])}, true))
			require.Equal(t, tc.want, s.respHeaders.GetOne(":status").ToString())
		})
	}
}

func TestMetadataCount(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want uint64
	}{{0, 0}, {-3, 0}, {math.NaN(), 0}, {math.Inf(-1), 0}, {7, 7}, {2.9, 2}, {1e30, math.MaxUint64}, {math.Inf(1), math.MaxUint64}} {
		require.Equal(t, tc.want, metadataCount(tc.in), "%v", tc.in)
	}
}

// Several accept-encoding headers are kept as the one list they are, and
// every attempt to an OpenAI-compatible backend gets it back.
func TestAIUpstreamKeepsAcceptEncodingList(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	writeKey(t, k, "sk-ant")
	cfg, err := upstreamConfig(t, `{"backends":[{"name":"claude","schema":"anthropic","apiKeyFile":"`+k+`"},{"name":"pool","schema":"openai"}]}`)
	require.NoError(t, err)
	s := newUpstreamStream([2]string{"accept-encoding", "gzip"}, [2]string{"accept-encoding", "identity;q=0.5"})
	key := filterconfig.HostBackendNamespace + "/" + filterconfig.HostBackendKey
	for _, backend := range []string{"claude", "pool", "claude", "pool"} {
		s.hostMetadata[key] = backend
		runAttempt(t, newAttempt(cfg, s), s, upstreamChat)
		got := s.reqHeaders.Get("accept-encoding")
		if backend == "claude" {
			require.Empty(t, got)
		} else {
			require.Len(t, got, 1)
			require.Equal(t, "gzip, identity;q=0.5", got[0].ToString())
		}
	}
}
