package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// BlindServers are n local servers that answer requests but have no usable
// metrics (their /metrics is a 404): a picker never has metrics for them.
func BlindServers(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","model":"m"}`))
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}

// ReservationEcho is a slow upstream (without metrics) that reports as usage exactly what
// ai_router reserves for a request (its prompt estimate, a quarter of the
// body's bytes rounded up, plus max_tokens), so a budget's total spend can
// be checked to the token.
type ReservationEcho struct {
	Addr string
	mu   sync.Mutex
	in   int
	peak int
}

// StartReservationEcho serves on 127.0.0.1, answering each request after delay.
func StartReservationEcho(t testing.TB, delay time.Duration) *ReservationEcho {
	t.Helper()
	e := &ReservationEcho{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" { // a picker's scrapes are not requests
			http.NotFound(w, r)
			return
		}
		var req struct {
			MaxTokens int `json:"max_tokens"`
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		_ = json.Unmarshal(buf.Bytes(), &req)
		e.mu.Lock()
		e.in++
		e.peak = max(e.peak, e.in)
		e.mu.Unlock()
		time.Sleep(delay)
		e.mu.Lock()
		e.in--
		e.mu.Unlock()
		prompt := (buf.Len() + 3) / 4
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"model":"m","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			prompt, req.MaxTokens, prompt+req.MaxTokens)
	}))
	t.Cleanup(srv.Close)
	e.Addr = strings.TrimPrefix(srv.URL, "http://")
	return e
}

// Peak is the most requests it held at once.
func (e *ReservationEcho) Peak() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peak
}
