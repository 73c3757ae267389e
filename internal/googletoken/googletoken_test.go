package googletoken

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/googletoken/googletokentest"
)

func TestSourceRefreshes(t *testing.T) {
	old := RefreshBefore
	RefreshBefore = 0
	defer func() { RefreshBefore = old }()
	ts := googletokentest.NewTokenServer(t)
	ts.Lifetime = 2 * time.Second
	var mu sync.Mutex
	var got []string
	s, err := Start(googletokentest.ServiceAccountKey(t, ts.URL), func(tok string) error {
		mu.Lock()
		got = append(got, tok)
		mu.Unlock()
		return nil
	})
	require.NoError(t, err)
	defer s.Close()
	require.Eventually(t, func() bool { return s.Err() == nil }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 }, 10*time.Second, 50*time.Millisecond,
		"a token is replaced before it expires")
	mu.Lock()
	require.Equal(t, "token-1", got[0])
	require.Equal(t, "token-2", got[1])
	mu.Unlock()
	s.Close()
	n := ts.Grants.Load()
	time.Sleep(2500 * time.Millisecond)
	require.Equal(t, n, ts.Grants.Load(), "no fetch after Close")
}

func TestSourceFailures(t *testing.T) {
	ts := googletokentest.NewTokenServer(t)
	ts.Failing.Store(true)
	s, err := Start(googletokentest.ServiceAccountKey(t, ts.URL), func(string) error { return nil })
	require.NoError(t, err)
	defer s.Close()
	require.Eventually(t, func() bool { e := s.Err(); return e != nil && strings.Contains(e.Error(), "temporarily_unavailable") }, 5*time.Second, 10*time.Millisecond)
	ts.Failing.Store(false)
	require.Eventually(t, func() bool { return s.Err() == nil }, 10*time.Second, 20*time.Millisecond, "it recovers by itself")

	for _, bad := range []string{`{}`, `not json`, `{"type":"authorized_user","client_id":"x"}`} {
		_, err := Start([]byte(bad), func(string) error { return nil })
		require.ErrorContains(t, err, "not a service account key")
	}
	key := googletokentest.ServiceAccountKey(t, ts.URL)
	_, err = Start(key[:len(key)/2], func(string) error { return nil })
	require.Error(t, err)
	require.NotContains(t, err.Error(), "PRIVATE KEY")
}
