package transform

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/stretchr/testify/require"
)

// exchangeRecord is everything a translator gave for one exchange, deep
// copied (its strings may be the translator's own memory).
type exchangeRecord struct {
	ReqHeaders    []HeaderEdit
	ReqBody       string
	ReqErr        string
	RespHeaders   []HeaderEdit
	RespStatus    int
	Whole         bool
	RespErr       string
	PassesBody    bool
	Body          string
	Changed       bool
	Usage         Usage
	HasUsage      bool
	FinalStatus   int
	CacheCreation uint64
}

// exchangeCase is one exchange with a backend: the request, the response
// and how it is cut into body chunks.
type exchangeCase struct {
	name     string
	stream   bool // the client asks for a stream (with usage)
	status   int
	ct       string
	body     []byte
	piece    int    // chunk size
	cut      bool   // the answer stops halfway, without its end
	skipUsge bool   // SkipUsage before the response (the module's OpenAI path)
	req      string // the request body, when not the default one
}

// bigger returns c with a request and an answer over maxKeptBuffer (the
// request's text and blanks in the answer: it says the same), so that the
// buffers they filled are dropped.
func (c exchangeCase) bigger() exchangeCase {
	text := strings.Repeat("many words ", maxKeptBuffer/8)
	c.req = `{"model":"m","messages":[{"role":"system","content":"` + text + `"},{"role":"user","content":"` + text + `"}]}`
	if c.stream {
		c.req = c.req[:len(c.req)-1] + `,"stream":true,"stream_options":{"include_usage":true}}`
	}
	blanks := strings.Repeat(" ", 2*maxKeptBuffer)
	switch {
	case c.ct == "text/event-stream": // a comment line first
		c.body = append([]byte(":"+blanks+"\n"), c.body...)
	case c.ct == "application/json":
		b := bytes.TrimRight(c.body, " \n")
		c.body = append(append(append([]byte(nil), b[:len(b)-1]...), blanks...), '}')
	}
	c.piece = 4096
	return c
}

func fixClock(tr Translator) {
	now := func() time.Time { return time.Unix(1700000000, 0) }
	switch t := tr.(type) {
	case *anthropicTranslator:
		t.now = now
	case *geminiTranslator:
		t.now = now
	case *bedrockTranslator:
		t.now = now
	}
}

func cloneEdits(in []HeaderEdit) []HeaderEdit {
	out := make([]HeaderEdit, len(in))
	for i, e := range in {
		out[i] = HeaderEdit{Name: strings.Clone(e.Name), Value: strings.Clone(e.Value), Remove: e.Remove}
	}
	return out
}

func runExchange(tr Translator, model string, c exchangeCase) exchangeRecord {
	fixClock(tr)
	var r exchangeRecord
	req := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	if c.stream {
		req = `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	}
	if c.req != "" {
		req = c.req
	}
	out, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", AcceptEncoding: "gzip", Body: []byte(req)})
	if err != nil {
		r.ReqErr = err.Error()
		return r
	}
	r.ReqHeaders, r.ReqBody = cloneEdits(out.Headers), string(out.Body)
	if s, ok := tr.(UsageSkipper); ok && c.skipUsge {
		s.SkipUsage()
	}
	rh, err := tr.TranslateResponseHeaders(UpstreamResponse{Status: c.status, ContentType: c.ct})
	if err != nil {
		r.RespErr = err.Error()
		return r
	}
	r.RespHeaders, r.RespStatus, r.Whole = cloneEdits(rh.Headers), rh.Status, rh.Whole
	if p, ok := tr.(BodyPasser); ok {
		r.PassesBody = p.PassesBody()
	}
	body := c.body
	if c.cut {
		body = body[:len(body)/2]
	}
	var dst []byte
	for i := 0; i < len(body); i += c.piece {
		end := min(i+c.piece, len(body))
		var ch bool
		dst, ch = tr.TranslateResponseBody(dst, body[i:end], !c.cut && end == len(body))
		r.Changed = r.Changed || ch
	}
	r.Body = string(dst)
	r.Usage, r.HasUsage = tr.Usage()
	if f, ok := tr.(FinalStatusReporter); ok {
		r.FinalStatus = f.FinalStatus()
	}
	if cc, ok := tr.(CacheCreationReporter); ok {
		r.CacheCreation = cc.CacheCreationInputTokens()
	}
	return r
}

// A reused translator (Translators.For) gives, byte for byte, what a new
// one gives, for every schema and answer (JSON, streamed, error), after
// any earlier exchange: one that ended, one cut mid-answer, one with
// another backend of the same schema (a model override) or another
// request (a stream): nothing of it is left in the next.
func TestTranslatorsReuseGivesAFreshTranslator(t *testing.T) {
	signer := &fakeSigner{}
	backends := map[string][]*Backend{ // two backends of each schema: plain and overriding the model
		"openai": {mustBackend(t, `{"schema":"openai"}`, testKey), mustBackend(t, `{"schema":"openai","model":"gpt-x","pathPrefix":"/api"}`, "other-key")},
		"azure": {mustBackend(t, `{"schema":"azure_openai","apiVersion":"2024-10-21"}`, testKey),
			mustBackend(t, `{"schema":"azure_openai","apiVersion":"2024-10-21","deployment":"d","model":"gpt-x"}`, "other-key")},
		"anthropic": {mustBackend(t, `{"schema":"anthropic"}`, testKey), mustBackend(t, `{"schema":"anthropic","model":"claude-opus-4-1","maxTokens":100}`, "other-key")},
		"gemini":    {mustBackend(t, `{"schema":"gemini"}`, testKey), mustBackend(t, `{"schema":"vertex_ai","project":"p","location":"us-central1","model":"gemini-x"}`, "")},
		"bedrock": {mustBackend(t, `{"schema":"aws_bedrock","region":"us-east-1"}`, "").WithSigner(signer),
			mustBackend(t, `{"schema":"aws_bedrock","region":"eu-west-1","model":"anthropic.claude-x"}`, "").WithSigner(signer)},
	}
	openAIStream := readFixture(t, "openai/chat_stream_multibyte.sse")
	openAIJSON := readFixture(t, "openai/chat_completion.json")
	cases := map[string][]exchangeCase{
		"openai": {
			{name: "json", status: 200, ct: "application/json", body: openAIJSON, piece: 7},
			{name: "stream", stream: true, status: 200, ct: "text/event-stream", body: openAIStream, piece: 5},
			{name: "stream, usage skipped", stream: true, status: 200, ct: "text/event-stream", body: openAIStream, piece: 64, skipUsge: true},
			{name: "error", status: 401, ct: "application/json", body: readFixture(t, "openai/error_401.json"), piece: 9},
		},
		"anthropic": {
			{name: "json", status: 200, ct: "application/json", body: readFixture(t, "anthropic/message_tools.json"), piece: 7},
			{name: "stream", stream: true, status: 200, ct: "text/event-stream", body: readFixture(t, "anthropic/stream_tools.sse"), piece: 5},
			{name: "error", status: 529, ct: "application/json", body: readFixture(t, "anthropic/error_overloaded.json"), piece: 9},
		},
		"gemini": {
			{name: "json", status: 200, ct: "application/json", body: []byte(geminiToolResponse), piece: 7},
			{name: "stream", stream: true, status: 200, ct: "text/event-stream", body: []byte(geminiStreamBody), piece: 3},
			{name: "error", status: 429, ct: "application/json", body: []byte(`{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}`), piece: 9},
		},
		"bedrock": {
			{name: "json", status: 200, ct: "application/json", body: []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"Hi."}]}},` +
				`"stopReason":"end_turn","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":72,"cacheReadInputTokens":20,"cacheWriteInputTokens":10}}`), piece: 7},
			{name: "stream", stream: true, status: 200, ct: "application/vnd.amazon.eventstream", body: bedrockStreamBody(t), piece: 11},
			{name: "error", status: 400, ct: "application/json", body: []byte(`{"message":"Malformed input request"}`), piece: 9},
		},
	}
	cases["azure"] = cases["openai"]
	for schema, bs := range backends {
		for _, c := range cases[schema] {
			for i, b := range bs {
				t.Run(schema+"/"+c.name+"/backend "+string(rune('0'+i)), func(t *testing.T) {
					want := runExchange(b.NewTranslator(), "smart", c)
					require.Empty(t, want.ReqErr)
					require.Empty(t, want.RespErr)
					require.NotEmpty(t, want.Body)
					var ts Translators
					earlier := []struct {
						b     *Backend
						model string
						c     exchangeCase
					}{
						{b, "smart", c}, // the same exchange, whole
						{bs[1-i], "other-model", cases[schema][1]},                                              // the other backend, a stream
						{b, "smart", func() exchangeCase { s := cases[schema][1]; s.cut = true; return s }()},   // a stream cut mid-answer
						{bs[1-i], "m", func() exchangeCase { s := cases[schema][0]; s.cut = true; return s }()}, // a JSON answer cut
						{b, "m", c.bigger()},                // a request and an answer over maxKeptBuffer
						{b, "m", cases[schema][1].bigger()}, // a stream after a long line
						{bs[1-i], "m", cases[schema][2]},    // an error answer
						{b, "m", exchangeCase{req: refused, status: 400, ct: "application/json", body: []byte(`{}`), piece: 1}}, // a refused request (an OpenAI-compatible backend sends it)
					}
					for _, e := range earlier {
						tr := ts.For(e.b)
						runExchange(tr, e.model, e.c)
						again := ts.For(b)
						require.Same(t, tr, again, "the translator is kept")
						require.Equal(t, want, runExchange(again, "smart", c))
					}
					ts.Release()
					for _, kept := range []any{ts.openAI, ts.azure, ts.anthropic, ts.gemini, ts.bedrock} {
						if v := reflect.ValueOf(kept); !v.IsNil() {
							requireOnlyEmptyBuffers(t, v.Elem(), fmt.Sprintf("%T", kept))
						}
					}
					require.Equal(t, want, runExchange(ts.For(b), "smart", c), "after Release")
				})
			}
		}
	}
}

// For makes no allocation once its kind of translator was made; a request
// translated by a reused OpenAI translator makes none either (the module's
// per-attempt path).
func TestTranslatorsForAllocatesOnce(t *testing.T) {
	var ts Translators
	b := mustBackend(t, `{"schema":"openai"}`, testKey)
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	ts.For(b)
	allocs := testing.AllocsPerRun(100, func() {
		tr := ts.For(b)
		if _, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: body}); err != nil {
			panic(err)
		}
	})
	require.Zero(t, allocs)
	require.Equal(t, 1.0, testing.AllocsPerRun(100, func() { b.NewTranslator() }), "a new translator is one allocation")
}

// refused is a request every provider translator refuses (n > 1); an
// OpenAI-compatible backend sends it on.
const refused = `{"model":"m","n":3,"messages":[{"role":"user","content":"hi"}]}`

// requireOnlyEmptyBuffers checks that a released translator (v, at path)
// holds nothing of its exchanges: no backend, key, model or state, only
// empty buffers (bounded by maxKeptBuffer) and the Bedrock decoder, which
// has no state of a stream.
func requireOnlyEmptyBuffers(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			requireOnlyEmptyBuffers(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		require.Zero(t, v.Len(), "%s is emptied", path)
		require.LessOrEqual(t, v.Cap()*int(v.Type().Elem().Size()), maxKeptBuffer, "%s is bounded", path)
		all := v.Slice(0, v.Cap())
		for i := range all.Len() {
			require.True(t, all.Index(i).IsZero() || v.Type().Elem().Kind() != reflect.Struct, "%s[%d] is cleared (credentials)", path, i)
		}
	case reflect.Array:
		if v.Type().Elem().Kind() != reflect.Uint8 { // digits
			for i := range v.Len() {
				requireOnlyEmptyBuffers(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case reflect.Pointer:
		if v.Type() != reflect.TypeOf((*eventstream.Decoder)(nil)) {
			require.True(t, v.IsNil(), "%s holds nothing", path)
		}
	default:
		require.True(t, v.IsZero(), "%s holds nothing", path)
	}
}
