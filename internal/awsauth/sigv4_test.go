package awsauth

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"
)

// signers are the credential shapes a Signer signs with.
func signers(t testing.TB) []*Signer {
	var out []*Signer
	for _, c := range []aws.Credentials{
		{AccessKeyID: testKeyID, SecretAccessKey: testSecret},
		{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "FQoGZXIvYXdzEXAMPLE/+=="},
		{AccessKeyID: "AKID", SecretAccessKey: string(make([]byte, 100)) + "long secret, over a block"},
	} {
		for _, region := range []string{"us-east-1", "eu-west-3"} {
			s, err := NewSigner(c, region)
			require.NoError(t, err)
			out = append(out, s)
		}
	}
	return out
}

// requireSignedAsTheSDK checks that Sign gives the SDK signer's headers
// (or its error).
func requireSignedAsTheSDK(t *testing.T, s *Signer, host, path, ct string, body []byte, at time.Time) {
	t.Helper()
	want, wantErr := s.signSDK(host, path, ct, body, at)
	got, err := s.Sign(host, path, ct, body, at)
	if wantErr != nil {
		require.Error(t, err)
		return
	}
	require.NoError(t, err)
	require.Equal(t, want, got, "host %q path %q", host, path)
}

// The signature of a plain request, computed without the SDK, is the
// SDK's: with and without a body and a session token, any day (the
// signing key is kept per day), paths with escapes; requests that are not
// plain go to the SDK.
func TestSignMatchesTheSDK(t *testing.T) {
	day := time.Date(2026, 12, 5, 23, 59, 59, 0, time.UTC)
	for _, s := range signers(t) {
		for _, at := range []time.Time{day, day.Add(time.Second), day.Add(time.Second), day.Add(-48 * time.Hour), day.In(time.FixedZone("x", 3600))} {
			for _, path := range []string{
				"/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
				"/model/m/converse-stream", "/model/a%2Fb%20c%7e/converse", "/model/%c3%a9/converse", "/", "/model/a~b_c.d-e/converse",
				"/model/a:b/converse", "/model/a b/converse", "/model/x?y=1", "/model/%zz/converse", "/model/%4", "relative",
			} {
				for _, body := range [][]byte{nil, []byte(`{"messages":[]}`)} {
					requireSignedAsTheSDK(t, s, "bedrock-runtime."+s.region+".amazonaws.com", path, "application/json", body, at)
				}
			}
			for _, host := range []string{"host:443", "Bedrock-Runtime.example", " spaced.host", ""} {
				requireSignedAsTheSDK(t, s, host, "/model/m/converse", "application/json", []byte("{}"), at)
			}
			for _, ct := range []string{"application/json; charset=utf-8", " application/json", "text/plain"} {
				requireSignedAsTheSDK(t, s, "h.example", "/model/m/converse", ct, []byte("{}"), at)
			}
		}
	}
}

func FuzzSignMatchesTheSDK(f *testing.F) {
	f.Add("bedrock-runtime.us-east-1.amazonaws.com", "/model/a%3Ab/converse", "application/json", []byte("{}"), int64(1764921600), uint8(1))
	f.Add("h", "/%41%2f~", "", []byte(nil), int64(0), uint8(2))
	f.Fuzz(func(t *testing.T, host, path, ct string, body []byte, secs int64, which uint8) {
		ss := signers(t)
		at := time.Unix(secs%(1<<34), 0)
		requireSignedAsTheSDK(t, ss[int(which)%len(ss)], host, path, ct, body, at)
	})
}
