package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/awsauth"
	"github.com/envoy-inferencepool/envoy-inferencepool/internal/secretfile"
	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// bedrockBackend builds an aws_bedrock backend with its signer, from the
// first credentials found, as the AWS SDKs look for them: the configured
// credentials file; the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); the shared credentials file
// ($AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials). A file is read
// again when it changes (rotated session tokens). No instance metadata,
// SSO or STS: those would block a worker thread on the network.
func bedrockBackend(b filterconfig.UpstreamBackend, getenv func(string) string) (*transform.Backend, *secretfile.File[*transform.Backend], error) {
	withCreds := func(file string) (*secretfile.File[*transform.Backend], error) {
		profile := b.Profile
		if profile == "" {
			profile = getenv("AWS_PROFILE")
		}
		if profile == "" {
			profile = "default"
		}
		return secretfile.Open(file, func(content string) (*transform.Backend, error) {
			creds, err := awsauth.ParseSharedCredentials(content, profile)
			if err != nil {
				return nil, err
			}
			return signedBackend(b.Config, creds)
		})
	}
	if b.CredentialsFile != "" {
		f, err := withCreds(b.CredentialsFile)
		return nil, f, err
	}
	if creds, ok := awsauth.FromEnvironment(getenv); ok {
		be, err := signedBackend(b.Config, creds)
		return be, nil, err
	}
	file := getenv("AWS_SHARED_CREDENTIALS_FILE")
	if file == "" {
		if home := getenv("HOME"); home != "" {
			file = filepath.Join(home, ".aws", "credentials")
		}
	}
	if file != "" {
		if _, err := os.Stat(file); err == nil {
			f, err := withCreds(file)
			return nil, f, err
		}
	}
	return nil, nil, errors.New("no AWS credentials: set credentialsFile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in Envoy's environment, or a shared credentials file")
}

func signedBackend(c transform.BackendConfig, creds aws.Credentials) (*transform.Backend, error) {
	be, err := transform.NewBackend(c, "")
	if err != nil {
		return nil, err
	}
	s, err := awsauth.NewSigner(creds, c.Region)
	if err != nil {
		return nil, err
	}
	return be.WithSigner(s), nil
}
