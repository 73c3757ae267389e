package transform

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// transform is plain Go: it must not bring cgo (net/http would, through
// net) or the Envoy SDK into the shared library.
func TestNoCgoNorSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, pkg := range strings.Fields(string(out)) {
		require.NotEqual(t, "runtime/cgo", pkg)
		require.NotContains(t, pkg, "github.com/envoyproxy/envoy")
	}
}
