package transform

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/chat/completions", "/v1/chat/completions"},
		{"/v1/chat/completions?stream=1", "/v1/chat/completions"},
		{"/v1/chat/completions#frag", "/v1/chat/completions"},
		{"/v1/chat/%63ompletions", "/v1/chat/completions"},
		{"/v1/chat%2Fcompletions", "/v1/chat/completions"},
		{"/v1/chat%2fcompletions", "/v1/chat/completions"},
		{"/%76%31/%63%68%61%74/%63%6F%6D%70%6C%65%74%69%6F%6E%73", "/v1/chat/completions"},
		{"/v1/chat%252Fcompletions", "/v1/chat%2Fcompletions"},
		{"/v1/chat/completions%3Fx", "/v1/chat/completions?x"}, // an escaped '?' is part of the path
		{"//v1///chat/completions", "/v1/chat/completions"},
		{"/v1/chat/completions/", "/v1/chat/completions"},
		{"/v1/chat/completions//", "/v1/chat/completions"},
		{"/v1/./chat/completions", "/v1/chat/completions"},
		{"/v1/x/../chat/completions", "/v1/chat/completions"},
		{"/../../v1/chat/completions", "/v1/chat/completions"},
		{"/v1/chat/completions/%2e%2e/completions", "/v1/chat/completions"},
		{"/v1/%2e/chat%2F%2Fcompletions%2F", "/v1/chat/completions"},
		{"/a%zzb%4", "/a%zzb%4"},
		{"/a%", "/a%"},
		{"/", "/"},
		{"//", "/"},
		{"", ""},
		{"?x", ""},
		{"*", "*"},
		{"%2Fv1%2Fmodels", "/v1/models"},
		{"/.well-known/x", "/.well-known/x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, NormalizePath(tt.in))
			require.Equal(t, NormalizePath(tt.want), NormalizePath(NormalizePath(tt.want)), "normal form is stable")
		})
	}
}

func TestNormalizePathDoesNotAllocate(t *testing.T) {
	for _, p := range []string{"/v1/chat/completions", "/v1/completions?x=1", "/invocations"} {
		require.Zero(t, testing.AllocsPerRun(100, func() { _ = NormalizePath(p) }), p)
	}
}

// FuzzNormalizePath checks NormalizePath against the standard library:
// for any path whose escapes are well-formed, it is url.PathUnescape then
// path.Clean (which collapses slashes, resolves dot segments and drops a
// trailing slash) of the path without its query and fragment.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/v1/chat/%63ompletions", "/v1/chat%2Fcompletions", "//v1//x/../chat/./completions/?q#f",
		"/a%zz", "%2Fv1", "*", "", "/%2e%2e/x", "/v1/chat%252F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := NormalizePath(p)
		raw := p
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i]
		}
		want, err := url.PathUnescape(raw)
		if err != nil {
			return // a malformed escape is kept as is: no reference to compare with
		}
		if strings.HasPrefix(want, "/") {
			want = path.Clean(want)
		}
		require.Equal(t, want, got)
	})
}
