package fakeprovider

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
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
)

// AWS Bedrock's side of the Converse API: SigV4 checked with the AWS SDK's
// signer and known test credentials, answers in Bedrock's shapes, streams
// in AWS's binary event stream.

// BedrockCreds are known test credentials (AWS's documentation example keys).
var BedrockCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "FQoGZXIvYXdzEXAMPLE"}

// BedrockCredentialsFile writes a shared credentials file whose profile
// "bedrock" holds BedrockCreds (and "default" wrong ones).
func BedrockCredentialsFile(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n[bedrock]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n",
		BedrockCreds.AccessKeyID, BedrockCreds.SecretAccessKey, BedrockCreds.SessionToken)), 0o600))
	return p
}

// ConverseRequest is the Converse request body; decoding is strict, so a
// field Bedrock does not know fails the test.
type ConverseRequest struct {
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

// VerifySigV4 checks the request's signature as AWS does: the SDK signs a
// request that carries only the headers the signature names, at the time
// it names, with BedrockCreds, and must get the same value.
func VerifySigV4(r *Recorded, region string) error {
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
	if err := v4.NewSigner().SignHTTP(context.Background(), BedrockCreds, req, hex.EncodeToString(sum[:]), "bedrock", region, at); err != nil {
		return err
	}
	if got := req.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature mismatch:\n got %s\nwant %s", auth, got)
	}
	return nil
}

// Bedrock checks the path for model, the signature for region and the
// body, answering Bedrock's error shapes otherwise; then answer runs.
func Bedrock(model, region string, answer func(w http.ResponseWriter, stream bool, req *ConverseRequest)) func(http.ResponseWriter, *Recorded) {
	return func(w http.ResponseWriter, r *Recorded) {
		base := "/model/" + strings.ReplaceAll(url.PathEscape(model), ":", "%3A")
		stream := r.Path == base+"/converse-stream"
		if !stream && r.Path != base+"/converse" {
			WriteBedrockError(w, 404, "ResourceNotFoundException", "no such path "+r.Path)
			return
		}
		if err := VerifySigV4(r, region); err != nil {
			WriteBedrockError(w, 403, "InvalidSignatureException", err.Error())
			return
		}
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.DisallowUnknownFields()
		var req ConverseRequest
		if err := dec.Decode(&req); err != nil {
			WriteBedrockError(w, 400, "ValidationException", "Malformed input request: "+err.Error())
			return
		}
		answer(w, stream, &req)
	}
}

// WriteBedrockError answers Bedrock's error shape.
func WriteBedrockError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("content-type", "application/json")
	w.Header().Set("x-amzn-ErrorType", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, msg)
}

// WriteConverseStream encodes events (event type, JSON payload) with the
// SDK's event-stream encoder, each flushed on its own.
func WriteConverseStream(t testing.TB, w http.ResponseWriter, events ...[2]string) {
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

// ConverseAnswer is a Converse answer: 20 input, 4 cache reads, 2 cache
// writes, 7 output tokens.
const ConverseAnswer = `{"output":{"message":{"role":"assistant","content":[{"text":"The lighthouse keeper waved."}]}},"stopReason":"end_turn",` +
	`"usage":{"inputTokens":20,"outputTokens":7,"totalTokens":33,"cacheReadInputTokens":4,"cacheWriteInputTokens":2},"metrics":{"latencyMs":400}}`

// WriteConverseAnswer answers ConverseAnswer.
func WriteConverseAnswer(w http.ResponseWriter) {
	w.Header().Set("content-type", "application/json")
	fmt.Fprint(w, ConverseAnswer)
}

// ConverseEvents is a ConverseStream answer ("Once upon a time"); usage:
// 25 input, 12 output.
var ConverseEvents = [][2]string{
	{"messageStart", `{"role":"assistant"}`},
	{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Once upon"}}`},
	{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":" a time"}}`},
	{"contentBlockStop", `{"contentBlockIndex":0}`},
	{"messageStop", `{"stopReason":"end_turn"}`},
	{"metadata", `{"usage":{"inputTokens":25,"outputTokens":12,"totalTokens":37},"metrics":{"latencyMs":800}}`},
}
