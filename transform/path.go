package transform

import "strings"

// NormalizePath returns the path a server behind us routes a request for
// the :path header p to, so that no other spelling of a checked endpoint
// slips by as an unknown path:
//
//   - the query string and fragment are dropped;
//   - every %XX escape is decoded once (uvicorn decodes the whole path,
//     %2F included, before Starlette routes on it, so
//     /v1/chat%2Fcompletions and /v1/chat/%63ompletions are the chat
//     route); a malformed escape is kept as is, like Python's unquote;
//   - runs of '/' become one, and '.' and '..' segments are resolved
//     (Envoy's normalize_path and merge_slashes, Go servers);
//   - a trailing '/' is dropped (Starlette redirects /x/ to /x).
//
// Reading more spellings as ours than a given server does is safe: such a
// request is only checked, never let through unchecked. A path that does
// not start with '/' is returned as is. The common, already-normal path is
// returned without allocating.
func NormalizePath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if !needsNormalizing(p) {
		return p
	}
	if strings.IndexByte(p, '%') >= 0 {
		p = unescapePath(p)
	}
	if len(p) == 0 || p[0] != '/' {
		return p
	}
	return cleanPath(p)
}

// needsNormalizing reports whether p may differ from its normal form.
func needsNormalizing(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return strings.IndexByte(p, '%') >= 0
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		return true
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			return true
		case '/':
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return true
			}
		}
	}
	return false
}

// unescapePath decodes every well-formed %XX escape once.
func unescapePath(p string) string {
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, p[i])
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// cleanPath collapses slashes, resolves dot segments (never above the root)
// and drops a trailing slash of a rooted path.
func cleanPath(p string) string {
	var segs []string
	for _, s := range strings.Split(p[1:], "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	return "/" + strings.Join(segs, "/")
}
