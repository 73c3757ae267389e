package picker

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// picker is plain Go: no Envoy SDK, no transform (the module joins them),
// and no JSON body parser of its own (transform is the one reader of OpenAI
// bodies, so both deployments hash the same prompt bytes).
func TestImportsNeitherSDKNorTransformNorGJSON(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	require.NoError(t, err)
	for _, pkg := range strings.Fields(string(out)) {
		require.NotContains(t, pkg, "github.com/envoyproxy/envoy")
		require.NotContains(t, pkg, "envoy-inferencepool/transform")
		require.NotContains(t, pkg, "tidwall/gjson")
	}
}
