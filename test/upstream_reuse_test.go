package test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// A pooled ai_upstream filter keeps its translator's buffers from one
// stream to the next (transform.Translators): a small request after a
// large one (past the 64 KiB the buffers keep), a stream, an error and a
// refused request reaches Anthropic as the first small one did, byte for
// byte, and its answer reaches the client the same.
func TestUpstreamTranslatorReusedAcrossRequests(t *testing.T) {
	fake := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		last := gjson.GetBytes(r.Body, "messages.@reverse.0.content").Str
		fakeprovider.Anthropic(t, anthropicKey, func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
			switch {
			case last == "fail":
				fakeprovider.WriteAnthropicError(w, 529, "overloaded_error", "Overloaded")
			case strings.HasPrefix(last, "stream"):
				fakeprovider.WriteAnthropicEvents(t, w)
			default:
				fakeprovider.WriteAnthropicMessage(w)
			}
		})(w, r)
	})
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "claude", "schema": "anthropic", "apiKeyFile": fakeprovider.KeyFile(t, anthropicKey)}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("claude")})

	user := func(text string, extra string) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":64` + extra + `,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":` +
			strconv.Quote(text) + `}]}`
	}
	big := strings.Repeat("a \"long\" line\n with é ", 100<<10/20)
	send := func(body string, status int) (sent []byte, answer string) {
		t.Helper()
		n := len(fake.Requests())
		res, err := h.Send(context.Background(), chatRequest(body))
		require.NoError(t, err)
		require.Equal(t, status, res.Client.Status, string(res.Client.Body))
		got := fake.Requests()
		if len(got) == n {
			return nil, string(res.Client.Body) // refused before the provider
		}
		last := got[len(got)-1]
		require.Equal(t, strconv.Itoa(len(last.Body)), res.AttemptRequests[len(res.AttemptRequests)-1].Headers.Get("content-length"))
		// "created" is the time of the answer: the rest must match.
		created := gjson.Get(string(res.Client.Body), "created").Raw
		return last.Body, strings.Replace(string(res.Client.Body), `"created":`+created, `"created":0`, 1)
	}
	small := user("Tell me about the lighthouse.", "")
	firstSent, firstAnswer := send(small, 200)
	require.Contains(t, firstAnswer, "The lighthouse keeper waved.")

	for _, before := range []struct {
		name, body string
		status     int
	}{
		{"a large request", user(big, ""), 200},
		{"a stream", user("stream, please", `,"stream":true,"stream_options":{"include_usage":true}`), 200},
		{"an error", user("fail", ""), 503},
		{"a refused request", user("hi", `,"n":2`), 400},
	} {
		t.Run("after "+before.name, func(t *testing.T) {
			sent, _ := send(before.body, before.status)
			if before.name == "a large request" {
				require.True(t, json.Valid(sent))
				require.Equal(t, big, gjson.GetBytes(sent, "messages.0.content").Str, "the large request whole")
			}
			again, answer := send(small, 200)
			require.Equal(t, string(firstSent), string(again), "the provider gets the same request")
			require.Equal(t, firstAnswer, answer, "the client gets the same answer")
		})
	}
}
