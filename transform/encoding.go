package transform

import "strings"

// MeteredAcceptEncoding rewrites a request's accept-encoding so that the
// server answers only in an encoding the meter reads: gzip when the client
// accepts it (gzip, x-gzip or *, with a q-value above 0), else none (an
// empty value: remove the header, and the server answers in plain bytes).
// The meter decodes gzip only: a br or zstd answer would carry usage no one
// could read. change is false when the header can stay as it is.
//
// A response in another encoding despite this (a server that ignores
// accept-encoding) is still charged, an estimate (ChargeOf).
func MeteredAcceptEncoding(v string) (out string, change bool) {
	if v == "" || v == "gzip" || v == "identity" {
		return v, false
	}
	gzip := false
	for part := range strings.SplitSeq(v, ",") {
		coding, params, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip", "*":
			gzip = gzip || !zeroQ(params)
		}
	}
	if gzip {
		return "gzip", true
	}
	return "", true
}

// zeroQ reports whether accept-encoding parameters say q=0.
func zeroQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			value = strings.TrimRight(strings.TrimSpace(value), "0")
			return value == "" || value == "." || value == "0." || value == "0"
		}
	}
	return false
}
