package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
)

// README.md's "Provider backends" in a real Envoy: one cluster holds the
// pool at priority 0 and Anthropic at priority 1 with ai_upstream in its
// upstream chain; the route retries on 5xx, 429, resets and connect
// failures with previous_priorities, so a pool that answers 429 or 503, or
// cannot be reached, is retried on Anthropic with Anthropic's translation.
// The fake Anthropic is TLS (the README's transport_socket_matches) and
// decodes with anthropic-sdk-go; the client is openai-go.

const e2eAnthropicKey = "sk-ant-e2e-FILE-KEY-0123456789"

// providersConfig rewrites README.md's provider bootstrap for this test:
// its own ports, static clusters, the picker's pool and the pool host on
// pool (a simulator, or a closed port), Anthropic's hosts on anthropic (the
// fake), the key file at keyFile, an admin listener.
func providersConfig(t *testing.T, listen, admin int, pool, anthropicAddr, keyFile string) []byte {
	s := readmeBlock(t, "providers-bootstrap")
	sock := func(addr string) string {
		host, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		return fmt.Sprintf("address: %s, port_value: %s", host, port)
	}
	for _, r := range []struct {
		old, new string
		all      bool
	}{
		{"port_value: 10000", fmt.Sprintf("port_value: %d", listen), false},
		{"address: 0.0.0.0", "address: 127.0.0.1", false},
		{"{dns: {name: pool-a.inference.svc.cluster.local, ports: [8000]}}", fmt.Sprintf("{static: [%q]}", pool), false},
		{"address: pool-a.inference.svc.cluster.local, port_value: 8000", sock(pool), false},
		{"address: api.anthropic.com, port_value: 443", sock(anthropicAddr), true},
		{"/etc/secrets/anthropic/api-key", keyFile, true},
		{"type: STRICT_DNS", "type: STATIC", true},
	} {
		require.Contains(t, s, r.old, "README.md's provider bootstrap changed; update this test")
		if r.all {
			s = strings.ReplaceAll(s, r.old, r.new)
		} else {
			s = strings.Replace(s, r.old, r.new, 1)
		}
	}
	s += fmt.Sprintf("admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: %d}\n", admin)
	var check any
	require.NoError(t, yaml.Unmarshal([]byte(s), &check))
	return []byte(s)
}

// fakeAnthropic is the TLS fake: a JSON message or, for a streamed
// request, the event stream.
func fakeAnthropic(t *testing.T) *fakeprovider.Server {
	message := fakeprovider.Anthropic(t, e2eAnthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		fakeprovider.WriteAnthropicMessage(w)
	})
	stream := fakeprovider.Anthropic(t, e2eAnthropicKey, func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		fakeprovider.WriteAnthropicEvents(t, w)
	})
	return fakeprovider.NewTLS(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if fakeprovider.IsAnthropicStream(r) {
			stream(w, r)
			return
		}
		message(w, r)
	})
}

func keyFile(t *testing.T) string {
	return fakeprovider.KeyFile(t, e2eAnthropicKey)
}

// e2eClientKey is the client's own key for the gateway, which must never
// reach a provider.
const e2eClientKey = "client-own-gateway-key"

func openAIClient(e *envoy) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.base+"/v1/"), option.WithAPIKey(e2eClientKey), option.WithMaxRetries(0))
}

var fallbackChat = openai.ChatCompletionNewParams{
	Model:    "sim-model",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("The lighthouse?")},
}

// requireAnthropicGot checks the last request the fake got: Anthropic's
// path and key, the README backend's model, never the client's key.
func requireAnthropicGot(t *testing.T, f *fakeprovider.Server, n int) {
	got := f.Requests()
	require.Len(t, got, n)
	last := got[n-1]
	require.Equal(t, "/v1/messages", last.Path)
	require.Equal(t, e2eAnthropicKey, last.Header.Get("x-api-key"))
	require.Empty(t, last.Header.Get("authorization"), "the client's key never reaches a provider")
	require.Contains(t, string(last.Body), `"model":"claude-sonnet-4-5"`)
}

func TestEnvoyFallsBackFromPoolToAnthropic(t *testing.T) {
	needEnvoy(t)
	pool := startSims(t, 1)[0]
	claude := fakeAnthropic(t)
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, providersConfig(t, listen, admin, pool, claude.Addr, keyFile(t)))
	client := openAIClient(e)
	ctx := context.Background()

	c, err := client.Chat.Completions.New(ctx, fallbackChat)
	require.NoError(t, err, "the pool serves")
	require.Equal(t, "sim-model", c.Model)
	require.Empty(t, claude.Requests())

	served := 0
	for _, code := range []string{"429", "503"} {
		t.Run("pool answers "+code, func(t *testing.T) {
			c, err := client.Chat.Completions.New(ctx, fallbackChat, option.WithHeader("X-Return-Error", code))
			require.NoError(t, err)
			served++
			requireAnthropicGot(t, claude, served)
			require.Equal(t, "The lighthouse keeper waved.", c.Choices[0].Message.Content)
			require.Equal(t, "sim-model", c.Model, "the client's model name")
			require.EqualValues(t, 26, c.Usage.PromptTokens, "Anthropic's input, cache reads and writes")
			require.EqualValues(t, 4, c.Usage.PromptTokensDetails.CachedTokens)
		})
	}
	t.Run("pool answers 503, streamed", func(t *testing.T) {
		params := fallbackChat
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, params, option.WithHeader("X-Return-Error", "503"))
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			require.True(t, acc.AddChunk(stream.Current()))
		}
		require.NoError(t, stream.Err())
		served++
		requireAnthropicGot(t, claude, served)
		require.Equal(t, "Once upon a time", acc.Choices[0].Message.Content)
		require.EqualValues(t, 33, acc.Usage.PromptTokens)
		require.EqualValues(t, 12, acc.Usage.CompletionTokens)
	})
}

// A pool that cannot be reached (nothing listens on its port): the picker
// has no metrics and fails open, the connection fails, and the retry goes
// to Anthropic.
func TestEnvoyFallsBackWhenPoolUnreachable(t *testing.T) {
	needEnvoy(t)
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	claude := fakeAnthropic(t)
	listen, admin := freePort(t), freePort(t)
	e := startEnvoyWith(t, listen, admin, providersConfig(t, listen, admin, closed, claude.Addr, keyFile(t)))
	client := openAIClient(e)
	c, err := client.Chat.Completions.New(context.Background(), fallbackChat)
	require.NoError(t, err)
	requireAnthropicGot(t, claude, 1)
	require.Equal(t, "The lighthouse keeper waved.", c.Choices[0].Message.Content)
}
