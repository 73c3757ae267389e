// Package googletoken keeps an OAuth access token for a Google Cloud
// service account fresh, for ai_upstream's vertex_ai backends. Tokens are
// minted with golang.org/x/oauth2/google from the account's JSON key in a
// goroutine of their own, never on a worker thread: a request only reads
// the current token. The key never appears in an error.
package googletoken

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2/google"
)

// Scope is the OAuth scope Vertex AI's generateContent needs.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// Refresh timing: a token is replaced RefreshBefore its expiry; a failed
// fetch is retried after a backoff that doubles from MinBackoff to
// MaxBackoff.
var (
	RefreshBefore = 5 * time.Minute
	MinBackoff    = 500 * time.Millisecond
	MaxBackoff    = time.Minute
)

// Source refreshes one service account's token. Safe for concurrent use.
type Source struct {
	onToken func(token string) error // builds what requests use from a token
	cur     atomic.Pointer[state]
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

type state struct {
	ok     bool // a token was handed to onToken and is not expired
	expiry time.Time
	err    error // the last fetch's error, if it failed
}

// Start checks the JSON key (a service account's key file content: an
// error names what is wrong, never the key) and starts refreshing: the
// first token is fetched at once, in the background, and handed to
// onToken, as is every later one.
func Start(keyJSON []byte, onToken func(token string) error) (*Source, error) {
	conf, err := google.JWTConfigFromJSON(keyJSON, Scope)
	if err != nil {
		return nil, errors.New("not a service account key (JSON with type service_account, client_email, private_key and token_uri)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{onToken: onToken, cancel: cancel, done: make(chan struct{})}
	s.cur.Store(&state{err: errors.New("the first token is being fetched")})
	go s.run(ctx, func() (string, time.Time, error) {
		// A fresh token source each time: the library's own would hand back
		// its cached token until seconds before expiry.
		tok, err := conf.TokenSource(ctx).Token()
		if err != nil {
			return "", time.Time{}, err
		}
		return tok.AccessToken, tok.Expiry, nil
	})
	return s, nil
}

func (s *Source) run(ctx context.Context, fetch func() (string, time.Time, error)) {
	defer close(s.done)
	backoff := MinBackoff
	for {
		token, expiry, err := fetch()
		wait := backoff
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && token == "":
			err = errors.New("the token endpoint returned no access token")
		case err == nil:
			err = s.onToken(token)
		}
		if err != nil {
			prev := s.cur.Load()
			s.cur.Store(&state{ok: prev.ok && time.Now().Before(prev.expiry), expiry: prev.expiry, err: err})
			backoff = min(2*backoff, MaxBackoff)
		} else {
			s.cur.Store(&state{ok: true, expiry: expiry})
			backoff = MinBackoff
			if expiry.IsZero() {
				expiry = time.Now().Add(time.Hour)
			}
			wait = max(time.Until(expiry)-RefreshBefore, time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Err is nil while a valid token is in use, else why there is none: the
// first fetch has not finished, or the last fetches failed and the token
// expired.
func (s *Source) Err() error {
	st := s.cur.Load()
	if st.ok && (st.expiry.IsZero() || time.Now().Before(st.expiry)) {
		return nil
	}
	if st.err == nil {
		return errors.New("the access token expired")
	}
	return fmt.Errorf("no Google access token: %w", st.err)
}

// Close stops refreshing and waits for the goroutine to end.
func (s *Source) Close() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
}
