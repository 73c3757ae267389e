// Package awsauth signs ai_upstream's Bedrock requests with AWS Signature
// Version 4 (the AWS SDK for Go v2's signature: computed in stack buffers
// for a plain request, sigv4.go, else by the SDK's signer) and reads the
// credentials they are signed with: a shared credentials file (a mounted
// secret or ~/.aws/credentials, one profile), or the standard environment
// variables.
// Credentials never appear in an error.
package awsauth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// Service is Bedrock runtime's signing name.
const Service = "bedrock"

// Signer signs requests for one region with one set of credentials. Safe
// for concurrent use.
type Signer struct {
	creds  aws.Credentials
	region string
	v4     *v4.Signer
	key    atomic.Pointer[dayKey] // the signing key of the last day signed
}

var _ transform.RequestSigner = (*Signer)(nil)

// NewSigner returns a Signer; the credentials need a key id and a secret.
func NewSigner(creds aws.Credentials, region string) (*Signer, error) {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return nil, errors.New("credentials need an access key id and a secret access key")
	}
	return &Signer{creds: creds, region: region, v4: v4.NewSigner()}, nil
}

// Sign signs a POST of body to https://host/path (path as it goes on the
// wire, percent-encoded) with its content type and length, and returns the
// headers that carry the signature. Every other header of the request is
// left unsigned, so that what Envoy adds on the way (x-request-id,
// x-forwarded-*) cannot break it.
func (s *Signer) Sign(host, path, contentType string, body []byte, at time.Time) ([]transform.HeaderEdit, error) {
	if plainSignable(host, path, contentType, s.creds.SessionToken, s.creds.AccessKeyID, s.region) {
		return s.signPlain(host, path, contentType, body, at), nil
	}
	return s.signSDK(host, path, contentType, body, at)
}

// signSDK signs with the SDK's signer, through a net/http request.
func (s *Signer) signSDK(host, path, contentType string, body []byte, at time.Time) ([]transform.HeaderEdit, error) {
	u, err := url.Parse("https://" + host + path)
	if err != nil {
		return nil, fmt.Errorf("the request path cannot be signed: %v", err)
	}
	req := &http.Request{Method: http.MethodPost, URL: u, Host: host, Header: http.Header{}, ContentLength: int64(len(body))}
	req.Header.Set("content-type", contentType)
	sum := sha256.Sum256(body)
	if err := s.v4.SignHTTP(context.Background(), s.creds, req, hex.EncodeToString(sum[:]), Service, s.region, at.UTC()); err != nil {
		return nil, fmt.Errorf("SigV4: %v", err)
	}
	out := []transform.HeaderEdit{
		{Name: "authorization", Value: req.Header.Get("Authorization")},
		{Name: "x-amz-date", Value: req.Header.Get("X-Amz-Date")},
	}
	if tok := req.Header.Get("X-Amz-Security-Token"); tok != "" {
		out = append(out, transform.HeaderEdit{Name: "x-amz-security-token", Value: tok})
	}
	return out, nil
}

// FromEnvironment reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN (ok false without a key id and secret).
func FromEnvironment(getenv func(string) string) (aws.Credentials, bool) {
	c := aws.Credentials{
		AccessKeyID:     strings.TrimSpace(getenv("AWS_ACCESS_KEY_ID")),
		SecretAccessKey: strings.TrimSpace(getenv("AWS_SECRET_ACCESS_KEY")),
		SessionToken:    strings.TrimSpace(getenv("AWS_SESSION_TOKEN")),
		Source:          "environment",
	}
	return c, c.AccessKeyID != "" && c.SecretAccessKey != ""
}

// ParseSharedCredentials reads profile's keys from a shared credentials
// file (INI: [profile] sections of key = value lines, # and ; comments):
// aws_access_key_id, aws_secret_access_key and aws_session_token. The
// SDK's config loader would also do this, but it links the STS and SSO
// clients into the library and probes the instance metadata service; this
// is the one format we read.
func ParseSharedCredentials(content, profile string) (aws.Credentials, error) {
	c := aws.Credentials{Source: "shared credentials file"}
	found, section := false, ""
	sc := bufio.NewScanner(strings.NewReader(content))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "" || text[0] == '#' || text[0] == ';':
			continue
		case text[0] == '[':
			if !strings.HasSuffix(text, "]") {
				return c, fmt.Errorf("line %d: a section header must end with ]", line)
			}
			section = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text[1:len(text)-1]), "profile "))
			found = found || section == profile
			continue
		}
		if section != profile {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			// Never echo the line: it may hold a secret.
			return c, fmt.Errorf("line %d: not a key = value line", line)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(v)
		case "aws_session_token":
			c.SessionToken = strings.TrimSpace(v)
		}
	}
	switch {
	case !found:
		return c, fmt.Errorf("no [%s] profile", profile)
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return c, fmt.Errorf("profile %s has no aws_access_key_id and aws_secret_access_key", profile)
	}
	for _, v := range []string{c.AccessKeyID, c.SecretAccessKey, c.SessionToken} {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x21 || v[i] > 0x7e {
				return c, fmt.Errorf("profile %s: the credentials must be printable ASCII without spaces", profile)
			}
		}
	}
	return c, nil
}
