package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// Known test credentials (AWS's documentation example keys).
var bedrockCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "FQoGZXIvYXdzEXAMPLE"}

func bedrockCredentialsFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n[bedrock]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n",
		bedrockCreds.AccessKeyID, bedrockCreds.SecretAccessKey, bedrockCreds.SessionToken)), 0o600))
	return p
}

// converseWire is the Converse request body; decoding is strict, so a
// field Bedrock does not know fails the test.
type converseWire struct {
	Messages []struct {
		Role    string            `json:"role"`
		Content []json.RawMessage `json:"content"`
	} `json:"messages"`
	System          []struct{ Text string } `json:"system"`
	InferenceConfig *struct {
		MaxTokens     int      `json:"maxTokens"`
		Temperature   *float64 `json:"temperature"`
		TopP          *float64 `json:"topP"`
		StopSequences []string `json:"stopSequences"`
	} `json:"inferenceConfig"`
	ToolConfig json.RawMessage `json:"toolConfig"`
}

// verifySigV4 checks the request's signature as AWS does: the SDK signs a
// request that carries only the headers the signature names, at the time
// it names, with the known credentials, and must get the same value.
func verifySigV4(r *fakeprovider.Recorded, region string) error {
	auth := r.Header.Get("authorization")
	_, signed, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		return fmt.Errorf("no SigV4 authorization: %q", auth)
	}
	signed, _, _ = strings.Cut(signed, ",")
	at, err := time.Parse("20060102T150405Z", r.Header.Get("x-amz-date"))
	if err != nil {
		return fmt.Errorf("x-amz-date: %v", err)
	}
	u, err := url.Parse("https://" + r.Host + r.Path)
	if err != nil {
		return err
	}
	req := &http.Request{Method: http.MethodPost, URL: u, Host: r.Host, Header: http.Header{}, ContentLength: int64(len(r.Body))}
	for _, name := range strings.Split(signed, ";") {
		switch name {
		case "host", "content-length":
		default:
			req.Header.Set(name, r.Header.Get(name))
		}
	}
	sum := sha256.Sum256(r.Body)
	if err := v4.NewSigner().SignHTTP(context.Background(), bedrockCreds, req, hex.EncodeToString(sum[:]), "bedrock", region, at); err != nil {
		return err
	}
	if got := req.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature mismatch:\n got %s\nwant %s", auth, got)
	}
	return nil
}

// bedrockAnswer checks the path, the signature and the body, answering
// Bedrock's error shapes otherwise; then answer runs.
func bedrockAnswer(t *testing.T, model, region string, answer func(w http.ResponseWriter, stream bool, req *converseWire)) func(http.ResponseWriter, *fakeprovider.Recorded) {
	return func(w http.ResponseWriter, r *fakeprovider.Recorded) {
		base := "/model/" + strings.ReplaceAll(url.PathEscape(model), ":", "%3A")
		stream := r.Path == base+"/converse-stream"
		if !stream && r.Path != base+"/converse" {
			bedrockErr(w, 404, "ResourceNotFoundException", "no such path "+r.Path)
			return
		}
		if err := verifySigV4(r, region); err != nil {
			bedrockErr(w, 403, "InvalidSignatureException", err.Error())
			return
		}
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.DisallowUnknownFields()
		var req converseWire
		if err := dec.Decode(&req); err != nil {
			bedrockErr(w, 400, "ValidationException", "Malformed input request: "+err.Error())
			return
		}
		answer(w, stream, &req)
	}
}

func bedrockErr(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("content-type", "application/json")
	w.Header().Set("x-amzn-ErrorType", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, msg)
}

// writeConverseStream encodes events with the SDK's event-stream encoder,
// each flushed on its own.
func writeConverseStream(t *testing.T, w http.ResponseWriter, events ...[2]string) {
	w.Header().Set("content-type", "application/vnd.amazon.eventstream")
	w.WriteHeader(200)
	enc := eventstream.NewEncoder()
	for _, ev := range events {
		var h eventstream.Headers
		h.Set(":message-type", eventstream.StringValue("event"))
		h.Set(":event-type", eventstream.StringValue(ev[0]))
		h.Set(":content-type", eventstream.StringValue("application/json"))
		require.NoError(t, enc.Encode(w, eventstream.Message{Headers: h, Payload: []byte(ev[1])}))
		w.(http.Flusher).Flush()
	}
}

const converseAnswer = `{"output":{"message":{"role":"assistant","content":[{"text":"The lighthouse keeper waved."}]}},"stopReason":"end_turn",` +
	`"usage":{"inputTokens":20,"outputTokens":7,"totalTokens":33,"cacheReadInputTokens":4,"cacheWriteInputTokens":2},"metrics":{"latencyMs":400}}`

var converseEvents = [][2]string{
	{"messageStart", `{"role":"assistant"}`},
	{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Once upon"}}`},
	{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":" a time"}}`},
	{"contentBlockStop", `{"contentBlockIndex":0}`},
	{"messageStop", `{"stopReason":"end_turn"}`},
	{"metadata", `{"usage":{"inputTokens":25,"outputTokens":12,"totalTokens":37},"metrics":{"latencyMs":800}}`},
}

func TestUpstreamBedrock(t *testing.T) {
	const model, region = "anthropic.claude-3-5-haiku-20241022-v1:0", "us-west-2"
	var asked *converseWire
	fake := fakeprovider.New(t, bedrockAnswer(t, model, region, func(w http.ResponseWriter, stream bool, req *converseWire) {
		asked = req
		if stream {
			writeConverseStream(t, w, converseEvents...)
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, converseAnswer)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{{"name": "bedrock", "schema": "aws_bedrock", "region": region,
		"model": model, "credentialsFile": bedrockCredentialsFile(t), "profile": "bedrock"}}},
		harness.UpstreamHost{Address: fake.Addr, Metadata: hostBackend("bedrock")})

	res, err := h.Send(context.Background(), chatRequest(`{"model":"claude-haiku","max_tokens":64,"temperature":0.3,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"A story?"}]}`))
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	got := fake.Requests()
	require.Len(t, got, 1)
	requireNoClientKey(t, got[0])
	require.Equal(t, "bedrock-runtime.us-west-2.amazonaws.com", got[0].Host, "the signed host is the one sent")
	require.Equal(t, bedrockCreds.SessionToken, got[0].Header.Get("x-amz-security-token"))
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
	fake := fakeprovider.New(t, bedrockAnswer(t, "m", "us-east-1", func(w http.ResponseWriter, _ bool, _ *converseWire) {
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, converseAnswer)
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
		openAIAnswer(w, r)
	})
	const model = "meta.llama3-70b-instruct-v1:0"
	bedrock := fakeprovider.New(t, bedrockAnswer(t, model, "us-east-1", func(w http.ResponseWriter, stream bool, _ *converseWire) {
		if s := int(bedrockStatus.Load()); s != 200 {
			bedrockErr(w, s, "ThrottlingException", "Too many requests, please wait before trying again.")
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, converseAnswer)
	}))
	h := providerGateway(t, map[string]any{"backends": []map[string]any{
		{"name": "pool", "schema": "openai"},
		{"name": "bedrock", "schema": "aws_bedrock", "region": "us-east-1", "model": model, "credentialsFile": bedrockCredentialsFile(t), "profile": "bedrock"}}},
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
	require.Equal(t, "llama-3-70b", jsonString(got[len(got)-1].Body, "model"))
	require.NoError(t, json.Unmarshal(res.Client.Body, &cc), string(res.Client.Body))
	require.Equal(t, "from the pool", cc.Choices[0].Message.Content)
}
