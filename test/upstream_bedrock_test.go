package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

func TestUpstreamBedrock(t *testing.T) {
	const model, region = "anthropic.claude-3-5-haiku-20241022-v1:0", "us-west-2"
	var asked *fakeprovider.ConverseRequest
	fake := fakeprovider.New(t, fakeprovider.Bedrock(model, region, func(w http.ResponseWriter, stream bool, req *fakeprovider.ConverseRequest) {
		asked = req
		if stream {
			fakeprovider.WriteConverseStream(t, w, fakeprovider.ConverseEvents...)
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, fakeprovider.ConverseAnswer)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{{"name": "bedrock", "schema": "aws_bedrock", "region": region,
		"model": model, "credentialsFile": fakeprovider.BedrockCredentialsFile(t), "profile": "bedrock"}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("bedrock")})

	res, err := h.Send(context.Background(), chatRequest(`{"model":"claude-haiku","max_tokens":64,"temperature":0.3,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"A story?"}]}`))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	got := fake.Requests()
	require.Len(t, got, 1)
	requireNoClientKey(t, got[0])
	require.Equal(t, "bedrock-runtime.us-west-2.amazonaws.com", got[0].Host, "the signed host is the one sent")
	require.Equal(t, fakeprovider.BedrockCreds.SessionToken, got[0].Header.Get("x-amz-security-token"))
	require.Equal(t, "Be brief.", asked.System[0].Text)
	require.Equal(t, 64, asked.InferenceConfig.MaxTokens)
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, "The lighthouse keeper waved.", cc.Choices[0].Message.Content)
	require.Equal(t, "claude-haiku", cc.Model)
	require.EqualValues(t, 26, cc.Usage.PromptTokens, "input + cache reads + cache writes")
	costs := costMetadata(t, res)
	require.EqualValues(t, 26, costs["llm_input_token"])
	require.EqualValues(t, 7, costs["llm_output_token"])

	res, err = h.Send(context.Background(), chatRequest(`{"model":"claude-haiku","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"A story?"}]}`))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Equal(t, "text/event-stream", res.Client.Headers.Get("content-type"))
	events := strings.Split(strings.TrimSuffix(string(res.Client.Body), "\n\n"), "\n\n")
	require.Equal(t, "data: [DONE]", events[len(events)-1])
	var text strings.Builder
	usage := 0
	for _, ev := range events[:len(events)-1] {
		var c openai.ChatCompletionChunk
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c), ev)
		if len(c.Choices) == 0 {
			usage++
			require.EqualValues(t, 25, c.Usage.PromptTokens)
			continue
		}
		text.WriteString(c.Choices[0].Delta.Content)
	}
	require.Equal(t, "Once upon a time", text.String())
	require.Equal(t, 1, usage)
	require.EqualValues(t, 12, costMetadata(t, res)["llm_output_token"])
}

// A signature made with other credentials is refused by the fake: the
// check can fail.
func TestUpstreamBedrockWrongCredentials(t *testing.T) {
	fake := fakeprovider.New(t, fakeprovider.Bedrock("m", "us-east-1", func(w http.ResponseWriter, _ bool, _ *fakeprovider.ConverseRequest) {
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, fakeprovider.ConverseAnswer)
	}))
	p := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.WriteFile(p, []byte("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = not-the-secret\n"), 0o600))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{{"name": "bedrock", "schema": "aws_bedrock", "region": "us-east-1", "credentialsFile": p}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("bedrock")})
	res, err := h.Send(context.Background(), chatRequest(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	require.Equal(t, 403, res.Client.Status)
	require.Contains(t, string(res.Client.Body), "signature mismatch")
	require.Contains(t, string(res.Client.Body), `"code":"permission_denied"`)
}

// The pool answers 503 and the retry reaches Bedrock, signed; Bedrock
// throttles and the retry reaches the pool with the original request.
func TestUpstreamFallbackToBedrock(t *testing.T) {
	var poolStatus, bedrockStatus atomic.Int32
	pool := fakeprovider.New(t, func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		if s := int(poolStatus.Load()); s != 200 {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(s)
			fmt.Fprint(w, `{"error":{"message":"no capacity","type":"server_error","param":null,"code":null}}`)
			return
		}
		fakeprovider.OpenAIAnswer(w, r)
	})
	const model = "meta.llama3-70b-instruct-v1:0"
	bedrock := fakeprovider.New(t, fakeprovider.Bedrock(model, "us-east-1", func(w http.ResponseWriter, stream bool, _ *fakeprovider.ConverseRequest) {
		if s := int(bedrockStatus.Load()); s != 200 {
			fakeprovider.WriteBedrockError(w, s, "ThrottlingException", "Too many requests, please wait before trying again.")
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, fakeprovider.ConverseAnswer)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "bedrock", "schema": "aws_bedrock", "region": "us-east-1", "model": model, "credentialsFile": fakeprovider.BedrockCredentialsFile(t), "profile": "bedrock"}}},
		harness.UpstreamHost{Address: pool.Addr, Metadata: hostBackend("pool")},
		harness.UpstreamHost{Address: bedrock.Addr, Metadata: hostBackend("bedrock")})
	send := func(order ...string) *harness.Result {
		req := chatRequest(`{"model":"llama-3-70b","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}`)
		req.Headers = append(req.Headers, [2]string{"x-gateway-destination-endpoint", strings.Join(order, ",")})
		req.RetriableStatus = []int{429, 503}
		res, err := h.Send(context.Background(), req)
		require.NoError(t, err)
		return res
	}

	poolStatus.Store(503)
	bedrockStatus.Store(200)
	res := send(pool.Addr, bedrock.Addr)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Len(t, res.Attempts, 2)
	require.Equal(t, "/model/meta.llama3-70b-instruct-v1%3A0/converse", res.AttemptRequests[1].Headers.Get(":path"))
	var cc openai.ChatCompletion
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, "The lighthouse keeper waved.", cc.Choices[0].Message.Content)
	require.EqualValues(t, 33, costMetadata(t, res)["llm_total_token"])

	poolStatus.Store(200)
	bedrockStatus.Store(429)
	res = send(bedrock.Addr, pool.Addr)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	require.Len(t, res.Attempts, 2)
	second := res.AttemptRequests[1].Headers
	require.Equal(t, "/v1/chat/completions", second.Get(":path"))
	require.Empty(t, second.Get("authorization"), "attempt 1's signature is gone from the shared map")
	require.Empty(t, second.Get("x-amz-date"))
	require.Empty(t, second.Get("x-amz-security-token"))
	got := pool.Requests()
	require.Equal(t, "llama-3-70b", fakeprovider.JSONString(got[len(got)-1].Body, "model"))
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
}
