package awsauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"
)

const (
	testKeyID  = "AKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func TestParseSharedCredentials(t *testing.T) {
	file := "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=SECRETDEFAULT\n\n" +
		"[profile bedrock]\n; another\n AWS_ACCESS_KEY_ID = AKIDBEDROCK \naws_secret_access_key = SECRETBEDROCK\naws_session_token = TOKEN/+=\nregion = us-west-2\n"
	c, err := ParseSharedCredentials(file, "default")
	require.NoError(t, err)
	require.Equal(t, "AKIDDEFAULT", c.AccessKeyID)
	require.Equal(t, "SECRETDEFAULT", c.SecretAccessKey)
	require.Empty(t, c.SessionToken)
	c, err = ParseSharedCredentials(file, "bedrock")
	require.NoError(t, err)
	require.Equal(t, aws.Credentials{AccessKeyID: "AKIDBEDROCK", SecretAccessKey: "SECRETBEDROCK", SessionToken: "TOKEN/+=", Source: "shared credentials file"}, c)

	for _, tc := range []struct{ name, file, profile, err string }{
		{"missing profile", file, "prod", "no [prod] profile"},
		{"no secret", "[default]\naws_access_key_id = A\n", "default", "has no aws_access_key_id and aws_secret_access_key"},
		{"bad line, secret not echoed", "[default]\nwJalrXUtnFEMI-SECRET\n", "default", "line 2: not a key = value line"},
		{"bad section", "[default\n", "default", "must end with ]"},
		{"control character", "[default]\naws_access_key_id = A\x01\naws_secret_access_key = S\n", "default", "printable ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSharedCredentials(tc.file, tc.profile)
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), "SECRET")
		})
	}
}

func TestFromEnvironment(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T"}
	c, ok := FromEnvironment(func(k string) string { return env[k] })
	require.True(t, ok)
	require.Equal(t, "T", c.SessionToken)
	_, ok = FromEnvironment(func(k string) string { return "" })
	require.False(t, ok)
}

// The signature verifies the way AWS checks it: the SDK signs a request
// carrying only the signed headers, with the same date, and gets the same
// authorization.
func TestSignVerifies(t *testing.T) {
	s, err := NewSigner(aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "SESSION"}, "us-east-1")
	require.NoError(t, err)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	const host, path = "bedrock-runtime.us-east-1.amazonaws.com", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	edits, err := s.Sign(host, path, "application/json", body, at)
	require.NoError(t, err)
	h := map[string]string{}
	for _, e := range edits {
		h[e.Name] = e.Value
	}
	require.Equal(t, "20261205T080000Z", h["x-amz-date"])
	require.Equal(t, "SESSION", h["x-amz-security-token"])
	require.Contains(t, h["authorization"], "Credential="+testKeyID+"/20261205/us-east-1/bedrock/aws4_request")
	require.Contains(t, h["authorization"], "SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token")
	require.NotContains(t, h["authorization"], testSecret)

	u, _ := url.Parse("https://" + host + path)
	req := &http.Request{Method: "POST", URL: u, Host: host, Header: http.Header{}, ContentLength: int64(len(body))}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-amz-security-token", "SESSION")
	sum := sha256.Sum256(body)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "SESSION"},
		req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", at))
	require.Equal(t, req.Header.Get("Authorization"), h["authorization"])

	// Another body, another signature.
	other, err := s.Sign(host, path, "application/json", append(body, ' '), at)
	require.NoError(t, err)
	require.NotEqual(t, h["authorization"], other[0].Value)

	_, err = NewSigner(aws.Credentials{AccessKeyID: testKeyID}, "us-east-1")
	require.Error(t, err)
}

// BenchmarkSigV4 is the signing cost per Bedrock request (4 KiB body),
// apart from the translation (BenchmarkTranslate/bedrock/...).
func BenchmarkSigV4(b *testing.B) {
	s, err := NewSigner(aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "SESSION"}, "us-east-1")
	require.NoError(b, err)
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	at := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign("bedrock-runtime.us-east-1.amazonaws.com", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "application/json", body, at); err != nil {
			b.Fatal(err)
		}
	}
}
