package transform

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at is the time of the i-th chunk of a test stream.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }

// meterChunks accounts body fed in the given chunks, the i-th at at(i).
func meterChunks(ep Endpoint, contentType, encoding string, chunks ...[]byte) Report {
	m := NewMeter(ep, 200, contentType, encoding)
	for i, c := range chunks {
		m.Write(c, at(i))
	}
	return m.Finish(at(len(chunks)))
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func TestMeterJSON(t *testing.T) {
	tests := []struct {
		file  string
		ep    Endpoint
		usage Usage
		model string
	}{
		{"openai/chat_completion.json", EndpointChatCompletions, Usage{1117, 1024, 512, 448, 1629}, "o4-mini-2025-04-16"},
		{"openai/chat_completion_tools.json", EndpointChatCompletions, Usage{82, 0, 17, 0, 99}, "gpt-4o-mini"},
		{"openai/chat_completion_usage_first.json", EndpointChatCompletions, Usage{9, 0, 3, 0, 12}, "gpt-4o-mini"},
		{"openai/completion.json", EndpointCompletions, Usage{5, 0, 7, 0, 12}, "gpt-3.5-turbo-instruct"},
		{"openai/embeddings.json", EndpointEmbeddings, Usage{8, 0, 0, 0, 8}, "text-embedding-3-small"},
		{"openai/responses.json", EndpointResponses, Usage{328, 128, 52, 20, 380}, "o3-2025-04-16"},
		{"sim/chat.json", EndpointChatCompletions, Usage{20, 0, 6, 0, 26}, "acme-test-7b"},
		{"sim/chat_tools.json", EndpointChatCompletions, Usage{9, 0, 12, 0, 21}, "acme-test-7b"},
		{"sim/completions.json", EndpointCompletions, Usage{4, 0, 4, 0, 8}, "acme-test-7b"},
		{"sim/embeddings.json", EndpointEmbeddings, Usage{4, 0, 0, 0, 4}, "acme-test-7b"},
		{"sim/responses.json", EndpointResponses, Usage{6, 0, 1, 0, 7}, "acme-test-7b"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, tt.file)
			u, ok := ParseUsage(body)
			require.True(t, ok)
			require.Equal(t, tt.usage, u, "ParseUsage")

			want := Report{Status: 200, Usage: tt.usage, HasUsage: true, Model: tt.model}
			require.Equal(t, want, meterChunks(tt.ep, "application/json", "", body), "whole")
			require.Equal(t, want, meterChunks(tt.ep, "application/json; charset=utf-8", "", bytesOf(body)...), "byte by byte")
			for i := range body {
				require.Equal(t, want, meterChunks(tt.ep, "application/json", "", body[:i], body[i:]), "split at %d", i)
			}
		})
	}
}

// firstContentEnd returns the offset just past the line that ends the
// first content-bearing event of an SSE fixture, found by feeding it whole.
func firstContentEnd(t *testing.T, ep Endpoint, body []byte) int {
	for end := 1; end <= len(body); end++ {
		if c := body[end-1]; c != '\n' && c != '\r' {
			continue
		}
		if r := meterChunks(ep, "text/event-stream", "", body[:end]); r.ContentEvents > 0 {
			return end
		}
	}
	t.Fatal("no content event")
	return 0
}

func TestMeterSSE(t *testing.T) {
	tests := []struct {
		file    string
		ep      Endpoint
		usage   Usage // zero: no usage
		model   string
		content int
		bytes   int // of content
		done    bool
	}{
		{"sim/chat_stream.sse", EndpointChatCompletions, Usage{11, 0, 6, 0, 17}, "acme-test-7b", 6, 25, true},
		{"sim/chat_stream_nousage.sse", EndpointChatCompletions, Usage{}, "acme-test-7b", 3, 15, true},
		{"sim/chat_tools_stream.sse", EndpointChatCompletions, Usage{9, 0, 12, 0, 21}, "acme-test-7b", 9, 32, true},
		{"sim/completions_stream.sse", EndpointCompletions, Usage{4, 0, 4, 0, 8}, "acme-test-7b", 4, 16, true},
		{"sim/responses_stream.sse", EndpointResponses, Usage{8, 0, 3, 0, 11}, "acme-test-7b", 3, 16, false},
		{"openai/chat_stream_multibyte.sse", EndpointChatCompletions, Usage{31, 16, 19, 7, 50}, "o4-mini-2025-04-16", 11, 70, true},
		{"openai/chat_stream_reasoning_crlf.sse", EndpointChatCompletions, Usage{12, 0, 40, 30, 52}, "qwen3-32b", 3, 43, true},
		{"openai/responses_stream.sse", EndpointResponses, Usage{37, 5, 62, 48, 99}, "o3-2025-04-16", 9, 69, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, tt.file)
			want := Report{Status: 200, Streamed: true, Usage: tt.usage, HasUsage: tt.usage != Usage{},
				Model: tt.model, ContentEvents: tt.content, ContentBytes: tt.bytes, Done: tt.done}
			first := firstContentEnd(t, tt.ep, body)

			whole := meterChunks(tt.ep, "text/event-stream", "", body)
			require.Equal(t, at(0), whole.FirstContent)
			whole.FirstContent = time.Time{}
			require.Equal(t, want, whole)

			// Every split point gives the same report, and the first content
			// is dated by the chunk that completes its line.
			for i := 0; i <= len(body); i++ {
				r := meterChunks(tt.ep, "text/event-stream", "", body[:i], body[i:])
				wantFirst := at(1)
				if i >= first {
					wantFirst = at(0)
				}
				require.Equal(t, wantFirst, r.FirstContent, "split at %d", i)
				r.FirstContent = time.Time{}
				require.Equal(t, want, r, "split at %d", i)
			}

			bytewise := meterChunks(tt.ep, "text/event-stream", "", bytesOf(body)...)
			require.Equal(t, at(first-1), bytewise.FirstContent)
			bytewise.FirstContent = time.Time{}
			require.Equal(t, want, bytewise)
		})
	}
}

// A short stream with every awkward thing: a comment, CRLF and CR line
// endings, multibyte content, a two-line data event, [DONE].
const awkwardStream = ": hi\r\n\r\n" +
	"data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"é日🚀\"}}]}\r\r" +
	"event: x\ndata: {\"choices\":[{\"delta\":\n" +
	"data: {\"content\":\"ü\"}}]}\n\n" +
	"data:{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\r\n\r\n" +
	"data: [DONE]\n\n"

func TestMeterSSEEveryPairOfSplits(t *testing.T) {
	body := []byte(awkwardStream)
	want := Report{Status: 200, Streamed: true, Usage: Usage{3, 1, 2, 0, 5}, HasUsage: true, Model: "m", ContentEvents: 2, ContentBytes: 11, Done: true}
	for i := 0; i <= len(body); i++ {
		for j := i; j <= len(body); j++ {
			r := meterChunks(EndpointChatCompletions, "text/event-stream", "", body[:i], body[i:j], body[j:])
			require.False(t, r.FirstContent.IsZero())
			r.FirstContent = time.Time{}
			require.Equal(t, want, r, "splits at %d and %d", i, j)
		}
	}
}

// gzipWriter is reused: a new one allocates about a megabyte, which slows
// fuzzing down.
var gzipWriter = gzip.NewWriter(nil)

func gzipped(t testing.TB, parts ...[]byte) []byte {
	var buf bytes.Buffer
	for _, p := range parts { // one gzip member per part
		gzipWriter.Reset(&buf)
		_, err := gzipWriter.Write(p)
		require.NoError(t, err)
		require.NoError(t, gzipWriter.Close())
	}
	return buf.Bytes()
}

func chunked(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

func TestMeterGzip(t *testing.T) {
	tests := []struct {
		file, contentType string
		ep                Endpoint
	}{
		{"openai/chat_completion.json", "application/json", EndpointChatCompletions},
		{"openai/responses.json", "application/json", EndpointResponses},
		{"openai/chat_stream_multibyte.sse", "text/event-stream", EndpointChatCompletions},
		{"openai/responses_stream.sse", "text/event-stream", EndpointResponses},
		{"sim/chat_stream.sse", "text/event-stream", EndpointChatCompletions},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, tt.file)
			want := meterChunks(tt.ep, tt.contentType, "", body)
			want.FirstContent = time.Time{}
			require.True(t, want.HasUsage)
			half := len(body) / 2
			for name, z := range map[string][]byte{
				"one member":  gzipped(t, body),
				"two members": gzipped(t, body[:half], body[half:]),
			} {
				for _, size := range []int{1, 7, 100, 4096, len(z)} {
					got := meterChunks(tt.ep, tt.contentType, "gzip", chunked(z, size)...)
					require.NoError(t, got.Err)
					got.FirstContent = time.Time{}
					require.Equal(t, want, got, "%s in chunks of %d", name, size)
				}
			}
		})
	}
}

func TestMeterGzipTruncated(t *testing.T) {
	z := gzipped(t, readFixture(t, "sim/chat_stream.sse"))
	r := meterChunks(EndpointChatCompletions, "text/event-stream", "x-gzip", z[:len(z)-10])
	require.ErrorContains(t, r.Err, "unexpected EOF")
	r = meterChunks(EndpointChatCompletions, "text/event-stream", "gzip", []byte("not gzip at all"))
	require.ErrorContains(t, r.Err, "gzip: invalid header")
	require.False(t, r.HasUsage)
}

// decoders counts the goroutines running a gzip decoder's coroutine.
func decoders() int {
	buf := make([]byte, 1<<20)
	for {
		if n := runtime.Stack(buf, true); n < len(buf) {
			return bytes.Count(buf[:n], []byte("transform.(*gunzipper).run("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

func TestMeterGzipLeavesNoGoroutine(t *testing.T) {
	// A meter that saw no byte, half a stream or all of it ends cleanly:
	// Finish releases the decoder's coroutine (a goroutine iter.Pull
	// started), which would otherwise stay parked for good.
	z := gzipped(t, readFixture(t, "sim/chat_stream.sse"))
	require.Zero(t, decoders())
	var meters []*Meter
	for _, body := range [][]byte{nil, z[:len(z)/2], z} {
		m := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "gzip")
		m.Write(body, t0)
		meters = append(meters, m)
	}
	require.Equal(t, 2, decoders(), "a decoder waits in each meter that saw bytes")
	var errs []error
	for _, m := range meters {
		errs = append(errs, m.Finish(t0).Err)
	}
	require.Zero(t, decoders(), "every coroutine ended")
	require.NoError(t, errs[0], "no byte")
	require.Error(t, errs[1], "half a stream")
	require.NoError(t, errs[2], "whole stream")
	require.Equal(t, meters[1].Finish(t0), meters[1].Finish(t0), "Finish twice")
}

func TestMeterIgnores(t *testing.T) {
	chat := readFixture(t, "openai/chat_completion.json")
	tests := []struct {
		name                  string
		status                int
		contentType, encoding string
		body                  []byte
		errType               string
		err                   string
	}{
		{"error status", 429, "application/json", "", readFixture(t, "sim/error_429.json"), "429", ""},
		{"error status with usage-like body", 500, "application/json", "", chat, "500", ""},
		{"other content type", 200, "text/plain", "", chat, "", ""},
		{"brotli", 200, "application/json", "br", chat, "", `content-encoding "br" is not supported for accounting`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeter(EndpointChatCompletions, tt.status, tt.contentType, tt.encoding)
			m.Write(tt.body, t0)
			r := m.Finish(t0)
			require.False(t, r.HasUsage)
			require.Empty(t, r.Model)
			require.Equal(t, tt.errType, r.ErrorType())
			if tt.err != "" {
				require.EqualError(t, r.Err, tt.err)
			}
		})
	}
}

func TestMeterSSEDetails(t *testing.T) {
	tests := []struct {
		name        string
		stream      string
		content     int
		streamError bool
		usage       bool
	}{
		{"empty content is not content", `data: {"choices":[{"delta":{"role":"assistant","content":""}}]}` + "\n\n", 0, false, false},
		{"null tool calls are not content", `data: {"choices":[{"delta":{"tool_calls":null,"content":null}}]}` + "\n\n", 0, false, false},
		{"refusal", `data: {"choices":[{"delta":{"refusal":"no"}}]}` + "\n\n", 1, false, false},
		{"reasoning", `data: {"choices":[{"delta":{"reasoning":"hmm"}}]}` + "\n\n", 1, false, false},
		{"second choice", `data: {"choices":[{"delta":{}},{"delta":{"content":"b"}}]}` + "\n\n", 1, false, false},
		{"error event", `data: {"error":{"message":"boom","type":"internal_error","code":500}}` + "\n\n", 0, true, false},
		{"null error is no error", `data: {"type":"response.created","response":{"error":null,"usage":null}}` + "\n\n", 0, false, false},
		{"usage null", `data: {"choices":[],"usage":null}` + "\n\n", 0, false, false},
		{"usage on the last line without a line ending", `data: {"usage":{"prompt_tokens":1}}`, 0, false, true},
		{"not JSON", "data: hello\n\ndata: {\"choices\":[{\"text\":\"x\"}]}\n\n", 1, false, false},
		{"responses failed event keeps usage and is an error", `data: {"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"x"},"usage":{"input_tokens":4,"output_tokens":0}}}` + "\n\n", 0, true, true},
		{"responses error event", "event: error\ndata: {\"type\":\"error\",\"code\":\"ERR_SOMETHING\",\"message\":\"boom\",\"param\":null,\"sequence_number\":1}\n\n", 0, true, false},
		{"responses completed is no error", `data: {"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":4,"output_tokens":2}}}` + "\n\n", 0, false, true},
		{"a delta naming error is content, not an error", `data: {"type":"response.output_text.delta","delta":"error"}` + "\n\n", 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := meterChunks(EndpointChatCompletions, "text/event-stream; charset=utf-8", "", []byte(tt.stream))
			require.Equal(t, tt.content, r.ContentEvents)
			require.Equal(t, tt.streamError, r.StreamError)
			require.Equal(t, tt.usage, r.HasUsage)
			if tt.streamError {
				require.Equal(t, ErrorTypeOther, r.ErrorType())
			}
		})
	}
}

func TestMeterSSEDropsOverlongLines(t *testing.T) {
	m := NewMeter(EndpointChatCompletions, 200, "text/event-stream", "")
	m.Write([]byte("data: {\"x\":\""), t0)
	chunk := []byte(strings.Repeat("a", 1<<20))
	for range maxSSELine>>20 + 1 {
		m.Write(chunk, t0)
	}
	require.Nil(t, m.sse.line, "the overlong line is not kept")
	m.Write([]byte("\"}\n\n"), t0)
	m.Write([]byte(`data: {"usage":{"prompt_tokens":2,"completion_tokens":1}}`+"\n\n"), t0)
	r := m.Finish(t0)
	require.Equal(t, 1, m.sse.dropped)
	require.Equal(t, Usage{2, 0, 1, 0, 3}, r.Usage)
}

func TestMeterJSONIgnoresNestedFields(t *testing.T) {
	body := []byte(`{"choices":[{"message":{"content":"x","model":"inner","usage":{"prompt_tokens":99}}}],` +
		`"data":{"usage":{"prompt_tokens":98}},"model":"outer","usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	for i := range body {
		r := meterChunks(EndpointChatCompletions, "application/json", "", body[:i], body[i:])
		require.Equal(t, "outer", r.Model)
		require.Equal(t, Usage{1, 0, 1, 0, 2}, r.Usage)
	}
}

func TestMeterJSONDropsHugeUsage(t *testing.T) {
	body := []byte(`{"model":"m","usage":{"prompt_tokens":1,"pad":"` + strings.Repeat("x", maxCapture) + `"}}`)
	r := meterChunks(EndpointChatCompletions, "application/json", "", chunked(body, 1000)...)
	require.False(t, r.HasUsage)
	require.Equal(t, "m", r.Model)
}

func TestSimulatorErrorFixtures(t *testing.T) {
	for _, f := range []string{"sim/error_404.json", "sim/error_429.json", "openai/error_401.json"} {
		_, ok := ParseUsage(readFixture(t, filepath.FromSlash(f)))
		require.False(t, ok, f)
	}
}

// A gzip bomb stops being decoded at the inflation bounds and the meter
// gives up on it; a JSON body stops being decoded when its document ends.
func TestMeterGzipBounds(t *testing.T) {
	t.Run("bomb", func(t *testing.T) {
		// What reading the usage after 8 MiB of spaces would cost.
		bomb := gzipped(t, append(append([]byte(`{"x":"`), bytes.Repeat([]byte{' '}, 8<<20)...), `","usage":{"total_tokens":1}}`...))
		require.Less(t, len(bomb), 40<<10)
		m := NewMeter(EndpointChatCompletions, 200, "application/json", "gzip")
		for off := 0; off < len(bomb); off += 16 << 10 {
			m.Write(bomb[off:min(off+16<<10, len(bomb))], t0)
		}
		made := m.gz.made
		r := m.Finish(t0)
		require.ErrorIs(t, r.Err, ErrInflateLimit)
		require.False(t, r.HasUsage)
		require.LessOrEqual(t, made, int64(2*inflateRatioFrom), "stopped early by the ratio")
	})
	t.Run("absolute", func(t *testing.T) {
		// Numbers compress less than 200:1; the limit is lowered from
		// 64 MiB to 2 MiB to keep the test short.
		var plain bytes.Buffer
		plain.WriteString(`{"x":"`)
		for i := 0; plain.Len() < 3<<20; i++ {
			fmt.Fprintf(&plain, "%d,", i*7919)
		}
		plain.WriteString(`","usage":{"total_tokens":1}}`)
		gz := gzipped(t, plain.Bytes())
		m := NewMeter(EndpointChatCompletions, 200, "application/json", "gzip")
		m.gz.limit = 2 << 20
		m.Write(gz, t0)
		r := m.Finish(t0)
		require.ErrorIs(t, r.Err, ErrInflateLimit)
		require.False(t, r.HasUsage)
		m = NewMeter(EndpointChatCompletions, 200, "application/json", "gzip")
		m.gz.limit = 4 << 20
		m.Write(gz, t0)
		r = m.Finish(t0)
		require.NoError(t, r.Err, "under the limit")
		require.True(t, r.HasUsage)
	})
	t.Run("JSON ends", func(t *testing.T) {
		body := append([]byte(`{"model":"m","usage":{"prompt_tokens":2,"completion_tokens":3}}`), bytes.Repeat([]byte{'\n'}, 4<<20)...)
		m := NewMeter(EndpointChatCompletions, 200, "application/json", "gzip")
		gz := gzipped(t, body)
		m.Write(gz, t0)
		made := m.gz.made
		r := m.Finish(t0)
		require.NoError(t, r.Err)
		require.Equal(t, Usage{2, 0, 3, 0, 5}, r.Usage)
		require.Less(t, made, int64(64<<10), "decoding stops at the end of the document")
	})
	t.Run("not a JSON object", func(t *testing.T) {
		r := meterChunks(EndpointChatCompletions, "application/json", "gzip", gzipped(t, []byte(` ["usage"]`+strings.Repeat(" ", 1<<20))))
		require.ErrorIs(t, r.Err, errNotJSONObject)
		r = meterChunks(EndpointChatCompletions, "", "", []byte("hello"))
		require.ErrorIs(t, r.Err, errNotJSONObject)
	})
}

// A Meter Reset after a response meters the next exactly as a new one
// would, whatever the previous response was, and a JSON answer then costs
// no allocation (the model is a view into the kept capture).
func TestMeterResetIsANewMeter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	json := []byte(`{"id":"x","model":"m-1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)
	sse := []byte("data: {\"model\":\"m-2\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"model\":\"m-2\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n")
	responses := []struct {
		status           int
		contentType, enc string
		body             []byte
	}{
		{200, "application/json", "", json},
		{200, "text/event-stream", "", sse},
		{500, "application/json", "", json},
		{200, "application/json", "br", json},
		{200, "application/json", "", json[:40]}, // cut short
		{200, "application/json", "", json},
	}
	kept := new(Meter)
	for i, r := range responses {
		fresh := NewMeter(EndpointChatCompletions, r.status, r.contentType, r.enc)
		kept.Reset(EndpointChatCompletions, r.status, r.contentType, r.enc)
		for _, m := range []*Meter{fresh, kept} {
			m.Write(r.body[:len(r.body)/2], t0)
			m.Write(r.body[len(r.body)/2:], t0)
		}
		require.Equal(t, fresh.Finish(t0), kept.Finish(t0), "response %d", i)
	}
	allocs := testing.AllocsPerRun(100, func() {
		kept.Reset(EndpointChatCompletions, 200, "application/json", "")
		kept.Write(json, t0)
		if r := kept.Finish(t0); r.Model != "m-1" || !r.HasUsage {
			t.Fatalf("report %+v", r)
		}
	})
	require.Zero(t, allocs)
}

// capturedStringCases are captured model values: strings plain, escaped or
// broken, and the other values a capture can hold.
var capturedStringCases = []string{`"gpt-4o"`, `""`, `"a\"b"`, `"\u00e9"`, `"a\\"`, `"a"b"`, `"`, `"a`, `{"a":"b"}`, `["a"]`, `" spaced "`, "\"ctl\x01\""}

func TestCapturedStringMatchesGJSON(t *testing.T) {
	for _, raw := range capturedStringCases {
		t.Run(raw, func(t *testing.T) {
			require.Equal(t, gjson.Parse(raw).Str, capturedString([]byte(raw)))
		})
	}
}

func FuzzCapturedStringMatchesGJSON(f *testing.F) {
	for _, raw := range capturedStringCases {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		require.Equal(t, gjson.Parse(string(raw)).Str, capturedString(raw))
	})
}
