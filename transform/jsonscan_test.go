package transform

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScanTopLevelValidity(t *testing.T) {
	tests := []string{
		``, ` `, `{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{1:2}`,
		`[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[[]]`, `[]]`, `{]`, `[}`, `{"a":[}]}`,
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `2.`, `+1`, `0x10`,
		`true`, `tru`, `truee`, `false`, `null`, `nul`, `True`, `NaN`,
		`""`, `"`, `"abc`, `"a\"b"`, `"a\\"`, `"a\\\"`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\/"`,
		"\"tab\there\"", "\"nl\nhere\"", "\"\x7f\"", "\"\xff\xfe invalid utf-8 passes\"", "\"日本語🚀\"",
		`"0123456789abcdef0123456789abcdef"`, `"0123456789abcdef0123456789abcde\"f"`,
		` {"a" : [ 1 , "2" , { "b" : null } ] } `, `{"a":1} x`, `{"a":1}{}`, "{\"a\":1}\n",
		`{"a":"` + strings.Repeat("x\\n", 100) + `"}`,
		strings.Repeat("[", 1023) + strings.Repeat("]", 1023),
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			require.Equal(t, json.Valid([]byte(in)), scanTopLevel([]byte(in), nil))
		})
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	require.False(t, scanTopLevel([]byte(deep), nil), "deeper than maxDepth")
}

func TestScanTopLevelMembers(t *testing.T) {
	type member struct{ key, value string }
	tests := []struct {
		in   string
		want []member
	}{
		{`{"a":1,"b":"x","c":{"d":[1,{"e":2}]},"f":[],"g":null}`,
			[]member{{`"a"`, `1`}, {`"b"`, `"x"`}, {`"c"`, `{"d":[1,{"e":2}]}`}, {`"f"`, `[]`}, {`"g"`, `null`}}},
		{" { \"k\\u0065y\" :\t-1.5e3 ,\n\"z\" : true } ", []member{{`"k\u0065y"`, `-1.5e3`}, {`"z"`, `true`}}},
		{`[1,{"a":2},"s"]`, []member{{"", `1`}, {"", `{"a":2}`}, {"", `"s"`}}},
		{`"scalar"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b := []byte(tt.in)
			var got []member
			require.True(t, scanTopLevel(b, func(k, v span) bool {
				key := ""
				if k.ok() {
					key = string(b[k.start:k.end])
				}
				got = append(got, member{key, string(b[v.start:v.end])})
				return true
			}))
			require.Equal(t, tt.want, got)
		})
	}
}

func TestStringStops(t *testing.T) {
	// Every byte value at every position of a word: the scanner stops at
	// the first '"', '\\' or control character and nowhere else.
	for pos := range 8 {
		for c := range 256 {
			word := []byte("abcdefgh")
			word[pos] = byte(c)
			in := append([]byte{'"'}, word...)
			in = append(in, `tail"`...)
			end := scanString(in, 1)
			if c == '"' {
				require.Equal(t, pos+2, end, "%q", in)
				continue
			}
			require.Equal(t, json.Valid(in), end == len(in), "%q", in)
			require.True(t, end == len(in) || end == -1, "%q", in)
		}
	}
}
