package transform

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

var usageShapes = []struct {
	name, raw string
	fast      bool // fastUsage reads it (else gjson does)
}{
	{name: "chat", raw: `{"prompt_tokens":812,"completion_tokens":221,"total_tokens":1033,"prompt_tokens_details":{"cached_tokens":7}}`, fast: true},
	{name: "openai details", raw: ` { "prompt_tokens" : 5 , "completion_tokens":3,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},` +
		`"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}` + "\n", fast: true},
	{name: "responses api", raw: `{"input_tokens":4,"output_tokens":6,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":3}}`, fast: true},
	{name: "no total: the sum", raw: `{"prompt_tokens":4,"completion_tokens":6}`, fast: true},
	{name: "null details and total", raw: `{"prompt_tokens":4,"completion_tokens":6,"total_tokens":null,"prompt_tokens_details":null}`, fast: true},
	{name: "details not an object", raw: `{"prompt_tokens":4,"prompt_tokens_details":9}`, fast: true},
	{name: "object where a count goes", raw: `{"prompt_tokens":{"a":1},"completion_tokens":2}`, fast: true},
	{name: "repeated key: the last", raw: `{"prompt_tokens":1,"prompt_tokens":2}`, fast: true},
	{name: "empty", raw: `{}`, fast: true},
	{name: "15 digits", raw: `{"prompt_tokens":999999999999999}`, fast: true},
	{name: "16 digits", raw: `{"prompt_tokens":9999999999999999}`},
	{name: "huge", raw: `{"prompt_tokens":18446744073709551615}`},
	{name: "negative", raw: `{"prompt_tokens":-4,"completion_tokens":6}`},
	{name: "fraction", raw: `{"prompt_tokens":4.5}`},
	{name: "exponent", raw: `{"prompt_tokens":1e3}`},
	{name: "leading zero", raw: `{"prompt_tokens":012}`},
	{name: "string count", raw: `{"prompt_tokens":"12"}`},
	{name: "escaped key", raw: `{"prompt\u005ftokens":12}`},
	{name: "repeated detail", raw: `{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}`},
	{name: "nested deeper", raw: `{"prompt_tokens_details":{"x":{"cached_tokens":1}}}`},
	{name: "true", raw: `{"prompt_tokens":true}`},
	{name: "not an object", raw: `null`},
	{name: "array", raw: `[1]`},
	{name: "cut", raw: `{"prompt_tokens":12`},
	{name: "junk after", raw: `{"prompt_tokens":12} x`},
	{name: "missing comma", raw: `{"prompt_tokens":12 "completion_tokens":3}`},
}

// fastUsage reads the shapes servers send exactly as gjson does, and
// leaves every other shape to gjson.
func TestFastUsageMatchesGJSON(t *testing.T) {
	for _, tc := range usageShapes {
		t.Run(tc.name, func(t *testing.T) {
			want, wantOK := usageOf(gjson.Parse(tc.raw))
			u, ok, handled := fastUsage(tc.raw)
			require.Equal(t, tc.fast, handled)
			if handled {
				require.Equal(t, wantOK, ok)
				require.Equal(t, want, u)
			}
			u, ok = usageOfRaw(tc.raw)
			require.Equal(t, wantOK, ok)
			require.Equal(t, want, u)
		})
	}
}

func FuzzFastUsageMatchesGJSON(f *testing.F) {
	for _, tc := range usageShapes {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, ok, handled := fastUsage(raw)
		if !handled {
			return
		}
		want, wantOK := usageOf(gjson.Parse(raw))
		if ok != wantOK || u != want {
			t.Fatalf("%q: fast %+v %v, gjson %+v %v", raw, u, ok, want, wantOK)
		}
	})
}

func BenchmarkUsageOfRaw(b *testing.B) {
	raw := usageShapes[1].raw
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			usageOfRaw(raw)
		}
	})
	b.Run("gjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			usageOf(gjson.Parse(raw))
		}
	})
}
