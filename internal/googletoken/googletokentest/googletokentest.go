// Package googletokentest fakes Google's OAuth token endpoint and makes
// service account keys for it, for tests of vertex_ai backends.
package googletokentest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TokenServer is a fake OAuth token endpoint for service-account JWTs: it
// answers each grant with access tokens token-1, token-2, ... valid for
// lifetime, or fails while failing is set.
type TokenServer struct {
	URL      string
	Grants   atomic.Int32
	Failing  atomic.Bool
	Lifetime time.Duration
}

func NewTokenServer(t testing.TB) *TokenServer {
	ts := &TokenServer{Lifetime: time.Hour}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || strings.Count(r.Form.Get("assertion"), ".") != 2 {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		if ts.Failing.Load() {
			http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		n := ts.Grants.Add(1)
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "token-" + strconv.Itoa(int(n)), "token_type": "Bearer", "expires_in": int(ts.Lifetime.Seconds())})
	}))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

// ServiceAccountKey is a service account key file whose token_uri is url.
func ServiceAccountKey(t testing.TB, url string) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "proj-1", "private_key_id": "kid1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "gateway@proj-1.iam.gserviceaccount.com", "client_id": "1", "token_uri": url,
	})
	require.NoError(t, err)
	return b
}
