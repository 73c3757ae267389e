package transform

import (
	"math/bits"

	"github.com/tidwall/gjson"
)

// usageOfRaw is usageOf(gjson.Parse(raw)) for a usage object's raw JSON
// (the meter's capture): the usual shape is read by fastUsage in one pass,
// anything else by gjson, so both give the same answer
// (FuzzFastUsageMatchesGJSON).
func usageOfRaw(raw string) (Usage, bool) {
	if u, ok, handled := fastUsage(raw); handled {
		return u, ok
	}
	return usageOf(gjson.Parse(raw))
}

// fastUsage reads a usage object of the shape servers send: keys without
// escapes, values that are null or plain non-negative integers (at most 15
// digits: exact as gjson's float64), and, for the *_details keys, objects
// of such pairs. handled is false for anything else (a string value, an
// exponent, an escape, a repeated detail key, junk after the object):
// gjson reads those.
func fastUsage(s string) (u Usage, ok, handled bool) {
	i := usageSpace(s, 0)
	if i == len(s) || s[i] != '{' {
		return Usage{}, false, false
	}
	total := false
	i = usageSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			var key string
			var good bool
			if key, i, good = plainKey(s, i); !good {
				return Usage{}, false, false
			}
			// One switch names where the count goes: each case of a
			// string switch costs a comparison call.
			var dst *uint64
			detail := ""
			switch key {
			case "prompt_tokens", "input_tokens":
				dst = &u.InputTokens
			case "completion_tokens", "output_tokens":
				dst = &u.OutputTokens
			case "total_tokens":
				dst, total = &u.TotalTokens, true
			case "prompt_tokens_details", "input_tokens_details":
				dst, detail = &u.CachedInputTokens, "cached_tokens"
			case "completion_tokens_details", "output_tokens_details":
				dst, detail = &u.ReasoningTokens, "reasoning_tokens"
			}
			var n uint64
			if i < len(s) && s[i] == '{' {
				if n, i, good = detailsObject(s, i, detail); !good {
					return Usage{}, false, false
				}
			} else if n, i, good = plainCount(s, i); !good {
				return Usage{}, false, false
			} else if detail != "" {
				n = 0 // a detail that is not an object has no count (gjson's Get on it)
			}
			if dst != nil {
				*dst = n
			}
			i = usageSpace(s, i)
			if i == len(s) {
				return Usage{}, false, false
			}
			if s[i] == '}' {
				i++
				break
			}
			if s[i] != ',' {
				return Usage{}, false, false
			}
			i = usageSpace(s, i+1)
		}
	}
	if usageSpace(s, i) != len(s) {
		return Usage{}, false, false
	}
	if !total {
		u.TotalTokens = u.InputTokens + u.OutputTokens
	}
	return u, true, true
}

// detailsObject reads an object of plain counts starting at s[i] == '{'
// and returns the count of want in it (0 if absent or null); good is false
// for another shape, or want twice (gjson takes the first).
func detailsObject(s string, i int, want string) (n uint64, next int, good bool) {
	seen := false
	i = usageSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return 0, i + 1, true
	}
	for {
		var key string
		if key, i, good = plainKey(s, i); !good {
			return 0, 0, false
		}
		var v uint64
		if v, i, good = plainCount(s, i); !good {
			return 0, 0, false
		}
		if key == want && want != "" {
			if seen {
				return 0, 0, false
			}
			n, seen = v, true
		}
		i = usageSpace(s, i)
		if i == len(s) {
			return 0, 0, false
		}
		if s[i] == '}' {
			return n, i + 1, true
		}
		if s[i] != ',' {
			return 0, 0, false
		}
		i = usageSpace(s, i+1)
	}
}

// plainKey reads `"key"` and the colon after it, starting at s[i]; good is
// false for an escape or a control byte in the key.
func plainKey(s string, i int) (key string, next int, good bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	j := i + 1
	for j+8 <= len(s) { // a word at a time, to the first '"', '\\' or control byte
		if m := stringStops(load64(s, j)); m != 0 {
			j += bits.TrailingZeros64(m) / 8
			break
		}
		j += 8
	}
	for j < len(s) && s[j] != '"' {
		if s[j] == '\\' || s[j] < 0x20 {
			return "", 0, false
		}
		j++
	}
	if j == len(s) {
		return "", 0, false
	}
	key = s[i+1 : j]
	j = usageSpace(s, j+1)
	if j == len(s) || s[j] != ':' {
		return "", 0, false
	}
	return key, usageSpace(s, j+1), true
}

// plainCount reads null (0) or a plain non-negative integer of at most 15
// digits without leading zeros at s[i].
func plainCount(s string, i int) (n uint64, next int, good bool) {
	if i < len(s) && s[i] == 'n' { // digits are the usual: tested first
		if len(s)-i >= 4 && s[i:i+4] == "null" {
			return 0, i + 4, true
		}
		return 0, 0, false
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		n = n*10 + uint64(s[j]-'0')
		j++
	}
	d := j - i
	if d == 0 || d > 15 || d > 1 && s[i] == '0' {
		return 0, 0, false
	}
	if j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E') {
		return 0, 0, false
	}
	return n, j, true
}

// usageSpace skips JSON whitespace from s[i].
func usageSpace(s string, i int) int {
	for i < len(s) && s[i] <= ' ' && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// load64 reads s[i:i+8] as a little-endian word.
func load64(s string, i int) uint64 {
	s = s[i : i+8] // one bounds check; the compiler makes the rest one load
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
