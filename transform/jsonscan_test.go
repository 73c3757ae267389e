package transform

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
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

// scanStringByBytes is the reference for scanString: the same grammar read
// one byte at a time.
func scanStringByBytes(b []byte, i int) int {
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c != '\\':
			i++
		case i+1 == len(b):
			return -1
		case strings.IndexByte(`"\/bfnrt`, b[i+1]) >= 0:
			i += 2
		case b[i+1] == 'u' && i+6 <= len(b) && hex4(b[i+2:i+6]):
			i += 6
		default:
			return -1
		}
	}
	return -1
}

// longStringPaths are scanString's two ways past its first words (the
// vector one where this machine has it): each must agree with
// scanStringByBytes from any start.
func longStringPaths() map[string]func([]byte, int) int {
	paths := map[string]func([]byte, int) int{"windows": scanStringWindows}
	if hasStopIndex {
		paths["indexed"] = scanStringIndexed
	}
	return paths
}

// TestScanStringBoundaries puts each awkward sequence at every offset of
// the first words, around the end of the word-at-a-time prefix (16 or 64
// bytes) and the vector routine's steps, and around the end of the first
// search window, in strings that end right there, a few bytes later or a
// long way later, and that are cut at the end of the buffer: scanString
// and both long paths must agree with the byte-by-byte reference, and
// scanTopLevel with encoding/json.
func TestScanStringBoundaries(t *testing.T) {
	var offsets []int
	for o := range 72 {
		offsets = append(offsets, o)
	}
	for o := 64 + scanWindow - 12; o < 64+scanWindow+12; o++ {
		offsets = append(offsets, o)
	}
	tests := []struct {
		name, seq string
	}{
		{"escaped quote", `\"`}, {"escaped backslash", `\\`}, {"escaped backslash then quote", `\\"`},
		{"escaped backslash then escaped quote", `\\\"`}, {"newline escape", `\n`}, {"solidus", `\/`},
		{"unicode escape", `\u00e9`}, {"bad unicode escape", `\u00g9`}, {"short unicode escape", `\u12`},
		{"unknown escape", `\x`}, {"lone backslash", `\`}, {"quote", `"`},
		{"NUL", "\x00"}, {"unit separator", "\x1f"}, {"tab", "\t"}, {"newline", "\n"},
		{"DEL", "\x7f"}, {"invalid UTF-8", "\xff\xfe"}, {"multibyte", "é日🚀"}, {"space", " "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, off := range offsets {
				for _, tail := range []int{0, 1, 8, 70} {
					text := strings.Repeat("a", off) + tt.seq + strings.Repeat("b", tail)
					for _, doc := range []string{`"` + text + `"`, `"` + text, `{"k":"` + text + `","z":1}`, `["` + text + `"]`} {
						b := []byte(doc)
						at := strings.IndexByte(doc, '"') + 1
						want := scanStringByBytes(b, at)
						require.Equal(t, want, scanString(b, at), "offset %d, tail %d: %q", off, tail, doc)
						for name, scan := range longStringPaths() {
							require.Equal(t, want, scan(b, at), "%s, offset %d, tail %d: %q", name, off, tail, doc)
						}
						require.Equal(t, json.Valid(b), scanTopLevel(b, nil), "offset %d, tail %d: %q", off, tail, doc)
					}
				}
			}
		})
	}
}

// TestScanStringLong checks long strings whole: plain text longer than
// several search windows, with escapes and multibyte text spread through
// it, and one control character or bad escape at the end of each window.
func TestScanStringLong(t *testing.T) {
	para := strings.Repeat("plain text ünïcödé 日本語 🚀 ", 40)
	long := strings.Repeat(para+`\n`, 20)
	tests := []struct {
		name string
		text string
	}{
		{"no escape", strings.Repeat("x", 3*scanWindow+5)},
		{"escapes", long},
		{"dense escapes", strings.Repeat(`a\"b\\c\nd\u00e9`, 2000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(`"` + tt.text + `"`)
			require.Equal(t, len(b), scanString(b, 1))
			for name, scan := range longStringPaths() {
				require.Equal(t, len(b), scan(b, 1), name)
			}
			require.True(t, scanTopLevel(b, nil))
			for at := 64; at < len(tt.text); at += scanWindow - 3 {
				for _, bad := range []string{"\x01", `\q`} {
					c := []byte(`"` + tt.text[:at] + bad + tt.text[at:] + `"`)
					want := scanStringByBytes(c, 1)
					require.Equal(t, want, scanString(c, 1), "at %d", at)
					for name, scan := range longStringPaths() {
						require.Equal(t, want, scan(c, 1), "%s at %d", name, at)
					}
					require.Equal(t, json.Valid(c), scanTopLevel(c, nil), "at %d", at)
				}
			}
		})
	}
}

func TestControls(t *testing.T) {
	// Every byte value at every position of a word: the lowest mark is
	// exactly the first control character.
	for pos := range 8 {
		for c := range 256 {
			word := []byte("abcdefgh")
			word[pos] = byte(c)
			m := controls(binary.LittleEndian.Uint64(word))
			if c < 0x20 {
				require.Equal(t, pos, bits.TrailingZeros64(m)/8, "%q", word)
			} else {
				require.Zero(t, m, "%q", word)
			}
			for end := range 9 { // hasControl on each prefix, read past its end
				in := append(append([]byte{}, word...), "\x00\x00\x00\x00\x00\x00\x00\x00"...)
				require.Equal(t, c < 0x20 && pos < end, hasControl(in, 0, end), "%q[:%d]", word, end)
				require.Equal(t, c < 0x20 && pos < end, hasControl(word[:end], 0, end), "%q[:%d]", word, end)
			}
		}
	}
}
