//go:build !race

package awsauth

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"
)

// A plain request's signature costs three allocations (the authorization
// and date strings and the edits), against about fifty through the SDK.
func TestSignAllocations(t *testing.T) {
	s, err := NewSigner(aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "T"}, "us-east-1")
	require.NoError(t, err)
	body := make([]byte, 4096)
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	sign := func() {
		if _, err := s.Sign("bedrock-runtime.us-east-1.amazonaws.com", "/model/anthropic.claude-x-v1%3A0/converse", "application/json", body, at); err != nil {
			panic(err)
		}
	}
	sign()
	require.Equal(t, 3.0, testing.AllocsPerRun(100, sign))
}
