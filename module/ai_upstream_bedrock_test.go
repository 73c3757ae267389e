package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

func TestBedrockCredentialSources(t *testing.T) {
	cfg := filterconfig.UpstreamBackend{Name: "b", Config: transform.BackendConfig{Schema: transform.SchemaBedrock, Region: "us-east-1"}}
	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".aws"), 0o700))
	shared := filepath.Join(home, ".aws", "credentials")
	require.NoError(t, os.WriteFile(shared, []byte("[default]\naws_access_key_id = AKIDHOME\naws_secret_access_key = S\n[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = S\n"), 0o600))
	sign := func(t *testing.T, be *transform.Backend) string {
		out, err := be.NewTranslator().TranslateRequest(transform.UpstreamRequest{Path: "/v1/chat/completions", Body: []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)})
		require.NoError(t, err)
		for _, h := range out.Headers {
			if h.Name == "authorization" {
				return h.Value
			}
		}
		return ""
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		profile string
		file    string
		want    string
		wantErr string
	}{
		{name: "environment first", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "S", "HOME": home}, want: "AKIDENV"},
		{name: "then ~/.aws/credentials", env: map[string]string{"HOME": home}, want: "AKIDHOME"},
		{name: "AWS_PROFILE", env: map[string]string{"HOME": home, "AWS_PROFILE": "other"}, want: "AKIDOTHER"},
		{name: "configured file and profile win", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "S"}, file: shared, profile: "other", want: "AKIDOTHER"},
		{name: "none", env: map[string]string{"HOME": t.TempDir()}, wantErr: "no AWS credentials"},
		{name: "missing profile", env: map[string]string{"HOME": home, "AWS_PROFILE": "prod"}, wantErr: "no [prod] profile"},
		{name: "missing file", file: filepath.Join(home, "nope"), wantErr: "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := cfg
			b.CredentialsFile, b.Profile = tc.file, tc.profile
			fixed, keyed, err := bedrockBackend(b, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			be := fixed
			if keyed != nil {
				be, err = keyed.Load(time.Now())
				require.NoError(t, err)
			}
			require.Contains(t, sign(t, be), "Credential="+tc.want+"/")
		})
	}
}
