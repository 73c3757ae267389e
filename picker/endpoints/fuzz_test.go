package endpoints

import (
	"slices"
	"testing"
)

// FuzzParseFile feeds endpoints files to the file source's parser: it must
// never panic, and whatever it accepts must be a non-empty, sorted,
// duplicate-free list of canonical ip:port, as a pool can use it.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		"- 10.0.0.2:80\n- 10.0.0.1:80\n",
		`["10.0.0.3:80", "[::ffff:10.0.0.3]:80"]`,
		"endpoints:\n  - 10.0.0.4:80\n  - '[::1]:8000'\n",
		`{"endpoints": ["10.0.0.5:80"], "extra": 1}`,
		"- 10.0.0.5:80\n- pod-5:80\n",
		"[]",
		"- [\n",
		"endpoints: null\n",
		"- 1\n- true\n",
		"&a [*a]\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseFile(data)
		if err != nil {
			if set != nil {
				t.Fatalf("error %v with a set %q", err, set)
			}
			return
		}
		if len(set) == 0 {
			t.Fatal("accepted an empty set")
		}
		if !slices.IsSorted(set) || len(slices.Compact(slices.Clone(set))) != len(set) {
			t.Fatalf("set not sorted and unique: %q", set)
		}
		for _, a := range set {
			if c, err := ParseAddr(a); err != nil || c != a {
				t.Fatalf("accepted %q, not canonical ip:port (%q, %v)", a, c, err)
			}
		}
	})
}
