package fakeprovider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// OpenAIContent is the text of OpenAIAnswer's message.
const OpenAIContent = "from the pool"

// OpenAIAnswer answers a chat completion as OpenAI does, echoing the
// request's model: 11 prompt and 5 completion tokens.
func OpenAIAnswer(w http.ResponseWriter, r *Recorded) {
	w.Header().Set("content-type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1733000000,"model":%q,`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}`, JSONString(r.Body, "model"), OpenAIContent)
}

// JSONString is the string at key of a JSON object body ("" if none).
func JSONString(body []byte, key string) string {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	s, _ := m[key].(string)
	return s
}

// KeyFile writes a key into a file, as a mounted secret (with its
// newline), and returns its path.
func KeyFile(t testing.TB, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(p, []byte(key+"\n"), 0o600))
	return p
}
