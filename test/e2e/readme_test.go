package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testFuncs are the Test functions of the Go files matching glob.
func testFuncs(t *testing.T, glob string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(glob)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, f := range files {
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				out[fn.Name.Name] = true
			}
		}
	}
	return out
}

// README.md's table of the real-Envoy suite names every real-Envoy test of
// this package and only tests that exist, in test/ and here, so that what it
// says has or has not run stays true of the code.
func TestREADMEListsTheRealEnvoySuite(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "## The real-Envoy suite")
	require.True(t, ok)
	section, _, _ = strings.Cut(section, "\n## ")
	abi := testFuncs(t, filepath.Join(repoRoot(t), "test", "*_test.go"))
	e2e := testFuncs(t, "*_test.go")
	named := regexp.MustCompile("`(Test\\w+)`")
	listed := map[string]bool{}
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "scenario" {
			continue
		}
		rows++
		for _, m := range named.FindAllStringSubmatch(cells[2], -1) {
			require.True(t, abi[m[1]], "README names ABI test %s, which test/ does not have", m[1])
		}
		for _, m := range named.FindAllStringSubmatch(cells[3], -1) {
			require.True(t, e2e[m[1]], "README names real-Envoy test %s, which test/e2e does not have", m[1])
			listed[m[1]] = true
		}
	}
	require.GreaterOrEqual(t, rows, 12)
	for name := range e2e {
		if strings.HasPrefix(name, "TestEnvoy") {
			require.True(t, listed[name], "%s is not in README.md's table of the real-Envoy suite", name)
		}
	}
}
