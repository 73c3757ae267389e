package transform

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

func addFixtures(f *testing.F, pattern string, add func([]byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	require.NoError(f, err)
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		add(b)
	}
}

var fuzzEndpoints = []Endpoint{EndpointChatCompletions, EndpointCompletions, EndpointEmbeddings, EndpointResponses,
	EndpointMessages, EndpointRerank, EndpointInvocations}

// FuzzParseRequest checks the request path against encoding/json: the same
// bodies are valid, the fields read are the ones encoding/json reads, and
// the edited body is valid JSON holding exactly the intended changes.
func FuzzParseRequest(f *testing.F) {
	addFixtures(f, "openai/requests/*.json", func(b []byte) { f.Add(b) })
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`,
		`{"model":"m","prompt":"p","stream":true,"stream_options":null}`,
		`{"model":"m","prompt":["a"],"stream":true,"stream_options":{"include_usage":false,"x":1}}`,
		`{"input":"x","model":"m\u00e9","stream_options":{},"stream":true}`,
		`{"model":"a","mod\u0065l":"b","messages":[1]}`,
		`{"model":"m","messages":[1]} x`,
		`{"model":"0","messages":[{}],"stream_options":{"include_usage":true}}`,
		`{"model":"m","previous_response_id":"resp_1","stream":true}`,
		`{"model":"m","prompt":"p","input":"i","stream":true}`,
	} {
		f.Add([]byte(s))
	}
	c := mustParse(f, `{"rewrites":[{"targets":[{"model":"fuzz-target-é"}]}]}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		if bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) < maxDepth {
			require.Equal(t, json.Valid(body), scanTopLevel(body, nil))
		}
		for _, ep := range fuzzEndpoints {
			r, err := ParseRequest(ep, body)
			if err != nil {
				var e *Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, 400, e.Status)
				require.True(t, json.Valid(e.Body()))
				continue
			}
			var top map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(body, &top))
			var model string
			require.NoError(t, json.Unmarshal(top["model"], &model))
			require.Equal(t, model, r.Model)
			var stream *bool
			_ = json.Unmarshal(top["stream"], &stream)
			require.Equal(t, stream != nil && *stream && r.Endpoint != EndpointEmbeddings, r.Stream)
			if ep != EndpointInvocations {
				require.Equal(t, ep, r.Endpoint)
			}
			if field := r.Endpoint.promptField(); field != "" && top[field] != nil {
				raw := bytes.TrimSpace(top[field])
				if raw[0] == '"' {
					raw = raw[1 : len(raw)-1]
				}
				require.Equal(t, string(raw), string(r.Prompt))
			} else {
				require.Empty(t, r.Prompt)
			}
			if r.Endpoint.streamsUsageOnRequest() && !r.Stream {
				// stream_options is refused without a stream unless empty.
				var so map[string]json.RawMessage
				_ = json.Unmarshal(top["stream_options"], &so)
				require.Empty(t, so)
			}

			d, err := c.Decide(ep, body, "")
			require.NoError(t, err)
			require.Equal(t, "fuzz-target-é", d.TargetModel)
			require.True(t, json.Valid(d.Body), "%s", d.Body)
			again, err := ParseRequest(ep, d.Body)
			require.NoError(t, err)
			require.Equal(t, "fuzz-target-é", again.Model)
			require.Equal(t, r.Stream, again.Stream)
			require.Equal(t, r.Endpoint, d.Endpoint)
			require.Equal(t, d.IncludeUsage && d.Endpoint != EndpointResponses, again.IncludeUsage)
			require.Equal(t, string(r.Prompt), string(d.Prompt))
			require.Equal(t, again.Prompt, d.Prompt)
		}
	})
}

// FuzzScanString checks the string scanner's fast paths (the word-at-a-time
// prefix, the vectorised search windows, the vector routine) against the
// byte-by-byte reference, and the whole scan against encoding/json, with
// the fuzzed text moved by pad bytes of plain text so that it meets every
// boundary.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`a\"b"`, `\u00e9\"x"`, "a\x01\"", `\\\"`, `\u12"`, "\xff\x1f\"", `abc\`} {
		for _, pad := range []uint16{0, 7, 60, 64 + scanWindow - 3} {
			f.Add([]byte(s), pad)
		}
	}
	f.Fuzz(func(t *testing.T, text []byte, pad uint16) {
		n := int(pad) % (3 * scanWindow)
		b := make([]byte, 0, 1+n+len(text)+1)
		b = append(b, '"')
		for i := range n {
			b = append(b, "plain text ünïcödé "[i%len("plain text ünïcödé ")])
		}
		b = append(b, text...)
		want := scanStringByBytes(b, 1)
		require.Equal(t, want, scanString(b, 1))
		for name, scan := range longStringPaths() {
			require.Equal(t, want, scan(b, 1), name)
			require.Equal(t, scanStringByBytes(b, n/2+1), scan(b, n/2+1), "%s from %d", name, n/2+1)
		}
		if bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) < maxDepth {
			require.Equal(t, json.Valid(b), scanTopLevel(b, nil))
			doc := append(append([]byte(`{"k":`), b...), `"}`...)
			require.Equal(t, json.Valid(doc), scanTopLevel(doc, nil))
		}
	})
}

// FuzzSSE checks that an SSE stream split anywhere in three gives the same
// report and the same restored bytes as the whole stream. (gzip stays out:
// the coverage of compress/flate would drown the parser's.)
func FuzzSSE(f *testing.F) {
	addFixtures(f, "*/*.sse", func(b []byte) { f.Add(b, uint16(len(b)/3), uint16(len(b)/2)) })
	f.Add([]byte(awkwardStream), uint16(10), uint16(200))
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint16) {
		i, j := min(int(a), len(stream)), min(int(b), len(stream))
		if i > j {
			i, j = j, i
		}
		whole := meterChunks(EndpointChatCompletions, "text/event-stream", "", stream)
		split := meterChunks(EndpointChatCompletions, "text/event-stream", "", stream[:i], stream[i:j], stream[j:])
		whole.FirstContent, split.FirstContent = time.Time{}, time.Time{}
		require.Equal(t, whole, split)

		restored := restoreAll("client-model", "text/event-stream", stream)
		require.Equal(t, restored, restoreAll("client-model", "text/event-stream", stream[:i], stream[i:j], stream[j:]))
	})
}

// FuzzResponseJSON checks the streaming walker of JSON bodies against gjson:
// same model and usage for any valid body, split anywhere, and a restored
// body that differs only by the model's value.
func FuzzResponseJSON(f *testing.F) {
	addFixtures(f, "*/*.json", func(b []byte) { f.Add(b, uint16(len(b)/2)) })
	f.Add([]byte(`{"model":"a\"b","usage":{"prompt_tokens":1},"x":[{"model":"no"}]}`), uint16(9))
	f.Fuzz(func(t *testing.T, body []byte, at uint16) {
		i := min(int(at), len(body))
		r := meterChunks(EndpointChatCompletions, "application/json", "", body[:i], body[i:])
		// Whatever the bytes, valid or not, the walk's jumps over whole
		// members (skipMember, only when a chunk holds all of one) change
		// nothing: one chunk, two, and a byte at a time agree, and so do
		// the model restorer's.
		whole := meterChunks(EndpointChatCompletions, "application/json", "", body)
		bytewise := meterChunks(EndpointChatCompletions, "application/json", "", bytesOf(body)...)
		for _, other := range []Report{r, bytewise} {
			require.Equal(t, whole.Model, other.Model)
			require.Equal(t, whole.HasUsage, other.HasUsage)
			require.Equal(t, whole.Usage, other.Usage)
			require.Equal(t, whole.Err, other.Err)
		}
		require.Equal(t, string(restoreAll("client", "application/json", body)),
			string(restoreAll("client", "application/json", bytesOf(body)...)))
		if !json.Valid(body) || !gjson.ParseBytes(body).IsObject() {
			return
		}
		// gjson takes the first of duplicate keys, the walker every one, and
		// the walker leaves escaped keys alone: keep to bodies where that
		// makes no difference.
		top, inner := keyCounts(gjson.ParseBytes(body)), keyCounts(gjson.GetBytes(body, "response"))
		if top["model"] > 1 || top["usage"] > 1 || top["response"] > 1 || inner["model"] > 1 || top["(escaped)"]+inner["(escaped)"] > 0 {
			return
		}
		model := gjson.GetBytes(body, "model")
		if model.Type == gjson.String {
			require.Equal(t, model.Str, r.Model)
		} else {
			require.Empty(t, r.Model)
		}
		usage, ok := ParseUsage(body)
		if len(gjson.GetBytes(body, "usage").Raw) <= maxCapture {
			require.Equal(t, ok, r.HasUsage)
			require.Equal(t, usage, r.Usage)
		}
		require.Equal(t, string(replaceModels(body, "client")),
			string(restoreAll("client", "application/json", body[:i], body[i:])))
	})
}

// keyCounts counts the keys of a JSON object; escaped keys count as "(escaped)".
func keyCounts(obj gjson.Result) map[string]int {
	counts := map[string]int{}
	if obj.IsObject() {
		obj.ForEach(func(k, _ gjson.Result) bool {
			if k.Raw == `"`+k.Str+`"` {
				counts[k.Str]++
			} else {
				counts["(escaped)"]++
			}
			return true
		})
	}
	return counts
}

// FuzzParseConfig checks that any filter_config either parses into a config
// that holds its invariants or gives an error naming what is wrong, never a
// panic, and that the first error reported does not depend on map order.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, fullConfig,
		`{"rewrites":[{"model":"a","targets":[{"model":"b","weigth":2}]}]}`,
		`{"models":[{"name":"a"}],"rewrites":[{"model":"x","targets":[{"model":"a"}]}]}`,
		`{"budget":{"header":"h","tokens":1,"window":"10ms","maxKeys":-3}}`,
		`{"costs":[{"metadataKey":"k","type":"cel","cel":"input_tokens / output_tokens"}]}`,
		`{"maxRequestBodyBytes": 9223372036854775808, "rejectUnknownPaths": "yes"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			require.NotEmpty(t, err.Error())
			_, again := Parse(data)
			require.EqualError(t, again, err.Error(), "the same error every time")
			return
		}
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 {
			require.True(t, json.Valid(trimmed), "accepted invalid JSON")
		}
		require.Positive(t, c.MaxRequestBodyBytes)
		require.True(t, json.Valid(c.ModelsBody()), "%s", c.ModelsBody())
		require.Len(t, c.costs, len(c.Costs))
		for _, r := range c.Rewrites {
			require.NotEmpty(t, r.Targets)
			for _, tg := range r.Targets {
				require.NotEmpty(t, tg.Model)
				require.True(t, tg.Weight >= 1 && tg.Weight <= maxWeight, "weight %d", tg.Weight)
			}
		}
		if c.Budget != nil {
			require.NotNil(t, c.Budgets())
			require.NotEmpty(t, c.Budget.Header)
			require.Positive(t, c.Budget.Tokens)
			require.GreaterOrEqual(t, c.Budgets().window, time.Second)
		}
		// What it decides for a request never fails but on the request.
		body := []byte(`{"model":"m","messages":[1],"stream":true}`)
		if _, err := c.Decide(EndpointChatCompletions, body, ""); err != nil {
			var e *Error
			require.ErrorAs(t, err, &e)
		}
	})
}
