package transform

import (
	"errors"
	"fmt"
	"strings"
)

// passThrough is the compiled passThroughPaths list: the paths ai_router
// hands to the backend unchecked. Everything else that is not an endpoint
// it checks gets 404, as Envoy AI Gateway answers.
type passThrough struct {
	exact    map[string]bool
	prefixes []string // "/a/b/" for an entry "/a/b/*"; "/" for "/*"
}

// match reports whether the normalised path p is listed.
func (pt *passThrough) match(p string) bool {
	if pt.exact[p] {
		return true
	}
	for _, pre := range pt.prefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// compilePassThrough checks every entry of passThroughPaths: a path in its
// normal form (what NormalizePath gives: no query, escapes, '//', dot
// segments or trailing '/'), optionally ending in "/*" to take every path
// below it, and never an endpoint ai_router checks (those would escape the
// model list, budgets and costs).
func compilePassThrough(paths []string) (passThrough, error) {
	pt := passThrough{exact: make(map[string]bool)}
	seen := make(map[string]bool)
	for i, p := range paths {
		at := fmt.Sprintf("passThroughPaths[%d]", i)
		if err := checkPassThroughPath(p); err != nil {
			return pt, fmt.Errorf("%s: %q %w", at, p, err)
		}
		if seen[p] {
			return pt, fmt.Errorf("%s: duplicate path %q", at, p)
		}
		seen[p] = true
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			pt.prefixes = append(pt.prefixes, prefix)
			continue
		}
		pt.exact[p] = true
	}
	return pt, nil
}

func checkPassThroughPath(p string) error {
	base, wildcard := strings.CutSuffix(p, "/*")
	if !wildcard {
		base = p
	}
	switch {
	case p == "":
		return errors.New("must not be empty")
	case p[0] != '/':
		return errors.New("must start with '/'")
	case strings.ContainsAny(p, "?#"):
		return errors.New("must not hold a query or fragment")
	case strings.ContainsAny(base, "*"):
		return errors.New("may hold '*' only as its last segment, \"/*\"")
	case strings.IndexByte(p, '%') >= 0:
		return errors.New("must be written decoded, without %-escapes (paths are matched after decoding)")
	case base != "" && NormalizePath(base) != base:
		return fmt.Errorf("is not in normal form (no '//', '.' or '..' segments, no trailing '/'): write %q", NormalizePath(base))
	}
	if ep := endpointOfPath[base]; ep != EndpointNone && !wildcard {
		return fmt.Errorf("is %s, an endpoint ai_router checks: it cannot be passed through", ep)
	}
	return nil
}
