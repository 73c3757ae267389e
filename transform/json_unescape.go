package transform

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// appendStr appends to dst what v.Str is for a gjson string read by Get,
// from v.Raw alone: the contents, unescaped as gjson unescapes them. With
// rawMember, which leaves Str unset, it reads a string value without the
// copy Get makes of every escaped one. Other types append nothing (their
// Str is empty).
func appendStr(dst []byte, v gjson.Result) []byte {
	if v.Type != gjson.String || len(v.Raw) < 2 {
		return dst
	}
	s := v.Raw[1 : len(v.Raw)-1]
	if strings.IndexByte(s, '\\') < 0 {
		return append(dst, s...)
	}
	return appendUnescaped(dst, s)
}

// appendUnescaped is gjson's unescape (v1.18), appending to dst: it stops
// at a control character or a bad escape, and reads \u escapes (a
// surrogate pair as one rune) as gjson does.
func appendUnescaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch {
		default:
			dst = append(dst, s[i])
		case s[i] < ' ':
			return dst
		case s[i] == '\\':
			i++
			if i >= len(s) {
				return dst
			}
			switch s[i] {
			default:
				return dst
			case '\\':
				dst = append(dst, '\\')
			case '/':
				dst = append(dst, '/')
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case '"':
				dst = append(dst, '"')
			case 'u':
				if i+5 > len(s) {
					return dst
				}
				r := hexRune(s[i+1:])
				i += 5
				if utf16.IsSurrogate(r) && len(s[i:]) >= 6 && s[i] == '\\' && s[i+1] == 'u' {
					r = utf16.DecodeRune(r, hexRune(s[i+2:]))
					i += 6
				}
				dst = utf8.AppendRune(dst, r)
				i--
			}
		}
	}
	return dst
}

// hexRune reads four hex digits as gjson's runeit does (0 when they are
// not hex).
func hexRune(s string) rune {
	n, _ := strconv.ParseUint(s[:4], 16, 64)
	return rune(n)
}
