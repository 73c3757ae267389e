package sdktest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// TestSDKDecodesTranslatedRequests translates the OpenAI request fixtures
// and FuzzTranslateAnthropicRequest's corpus, and checks that every
// request the translator accepts decodes with the Anthropic SDK's own
// MessageNewParams, with the same model and max_tokens.
func TestSDKDecodesTranslatedRequests(t *testing.T) {
	var bodies [][]byte
	fixtures, err := filepath.Glob("../testdata/openai/requests/chat*.json")
	require.NoError(t, err)
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		bodies = append(bodies, b)
	}
	corpus, err := filepath.Glob("../testdata/fuzz/FuzzTranslateAnthropicRequest/*")
	require.NoError(t, err)
	for _, name := range corpus {
		bodies = append(bodies, corpusBytes(t, name))
	}
	require.NotEmpty(t, fixtures)
	accepted := 0
	backend := mustBackend(t, `{"schema":"anthropic"}`, testKey)
	for _, body := range bodies {
		out, err := backend.NewTranslator().TranslateRequest(transform.UpstreamRequest{Path: "/v1/chat/completions", Body: body})
		if err != nil {
			require.IsType(t, &transform.Error{}, err)
			continue
		}
		accepted++
		var p anthropic.MessageNewParams
		require.NoError(t, json.Unmarshal(out.Body, &p), "%s", out.Body)
		require.Equal(t, gjson.GetBytes(body, "model").Str, string(p.Model))
		require.Positive(t, p.MaxTokens)
	}
	require.Positive(t, accepted)
	t.Logf("%d of %d requests translated and decoded", accepted, len(bodies))
}

// corpusBytes reads a "go test fuzz v1" file holding one []byte value.
func corpusBytes(t *testing.T, name string) []byte {
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	require.Len(t, lines, 2, name)
	require.Equal(t, "go test fuzz v1", lines[0])
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	require.True(t, ok, name)
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	require.NoError(t, err, name)
	return []byte(s)
}
