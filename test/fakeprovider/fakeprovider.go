// Package fakeprovider is a provider backend for tests: an httptest server on
// 127.0.0.1 that records what it gets, and each provider's side of its API
// (OpenAI's chat completions, Anthropic's Messages, Google's
// generateContent, AWS Bedrock's Converse with SigV4), decoding each
// request with the provider's official SDK types and answering in its
// documented shapes. The abihost tests (package test) and the real-Envoy
// suite (test/e2e) share it.
package fakeprovider

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/stretchr/testify/require"
)

// Recorded is one request a fake provider got.
type Recorded struct {
	Host   string // the Host header (:authority)
	Path   string // the request URI, query included
	Header http.Header
	Body   []byte
}

// Server is a fake provider.
type Server struct {
	Addr   string // ip:port
	answer func(w http.ResponseWriter, r *Recorded)
	mu     sync.Mutex
	got    []Recorded
}

// New starts a fake provider speaking plain HTTP; answer writes the
// response of each request. A body whose length differs from its
// content-length gets 400 without reaching answer.
func New(t testing.TB, answer func(w http.ResponseWriter, r *Recorded)) *Server {
	return start(t, answer, false)
}

// NewTLS is New over TLS (httptest's self-signed certificate), as a
// provider's API is reached.
func NewTLS(t testing.TB, answer func(w http.ResponseWriter, r *Recorded)) *Server {
	return start(t, answer, true)
}

func start(t testing.TB, answer func(w http.ResponseWriter, r *Recorded), tls bool) *Server {
	t.Helper()
	s := &Server{answer: answer}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := Recorded{Host: r.Host, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body}
		s.mu.Lock()
		s.got = append(s.got, rec)
		s.mu.Unlock()
		if r.ContentLength != int64(len(body)) {
			http.Error(w, "content-length does not match the body", http.StatusBadRequest)
			return
		}
		s.answer(w, &rec)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	s.Addr = srv.Listener.Addr().String()
	return s
}

// Requests returns what the provider got so far.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.got...)
}

// Anthropic decodes a request with the Anthropic SDK's MessageNewParams
// and checks what Anthropic requires (key, anthropic-version, the path),
// answering Anthropic's error shape otherwise; then answer runs.
func Anthropic(t testing.TB, key string, answer func(w http.ResponseWriter, p *anthropic.MessageNewParams)) func(http.ResponseWriter, *Recorded) {
	return func(w http.ResponseWriter, r *Recorded) {
		var p anthropic.MessageNewParams
		switch {
		case r.Path != "/v1/messages":
			WriteAnthropicError(w, 404, "not_found_error", "no such path "+r.Path)
		case r.Header.Get("x-api-key") != key:
			WriteAnthropicError(w, 401, "authentication_error", "invalid x-api-key")
		case r.Header.Get("anthropic-version") == "":
			WriteAnthropicError(w, 400, "invalid_request_error", "anthropic-version: header is required")
		case json.Unmarshal(r.Body, &p) != nil:
			WriteAnthropicError(w, 400, "invalid_request_error", "cannot decode the body")
		default:
			answer(w, &p)
		}
	}
}

// WriteAnthropicError answers Anthropic's error shape.
func WriteAnthropicError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_011"}`, typ, msg)
}

// AnthropicMessage is a Messages API answer with cache reads and writes:
// 20 input, 4 cache reads, 2 cache writes, 7 output tokens.
const AnthropicMessage = `{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5",` +
	`"content":[{"type":"text","text":"The lighthouse keeper waved."}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":20,"output_tokens":7,"cache_read_input_tokens":4,"cache_creation_input_tokens":2}}`

// WriteAnthropicMessage answers AnthropicMessage.
func WriteAnthropicMessage(w http.ResponseWriter) {
	w.Header().Set("content-type", "application/json")
	io.WriteString(w, AnthropicMessage)
}

// AnthropicEvents is a Messages stream ("Once upon a time"); usage: 25
// input + 5 cache reads + 3 cache writes, 12 output.
var AnthropicEvents = []string{
	`{"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":3}}}`,
	`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`{"type":"ping"}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once upon"}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" a time"}}`,
	`{"type":"content_block_stop","index":0}`,
	`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}`,
	`{"type":"message_stop"}`,
}

// WriteAnthropicEvents streams AnthropicEvents as Anthropic does, each
// event checked against the SDK's MessageStreamEventUnion and flushed.
func WriteAnthropicEvents(t testing.TB, w http.ResponseWriter) {
	w.Header().Set("content-type", "text/event-stream; charset=utf-8")
	w.WriteHeader(200)
	for _, ev := range AnthropicEvents {
		var u anthropic.MessageStreamEventUnion
		require.NoError(t, json.Unmarshal([]byte(ev), &u), ev)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", u.Type, ev)
		w.(http.Flusher).Flush()
	}
}

// IsAnthropicStream reports whether a decoded request asked for a stream
// (MessageNewParams has no field for it: the SDK picks the endpoint mode).
func IsAnthropicStream(r *Recorded) bool {
	var v struct {
		Stream bool `json:"stream"`
	}
	return json.Unmarshal(r.Body, &v) == nil && v.Stream
}

// RequireNotSent checks that no header of r carries secret (a client's own
// key must never reach a provider).
func RequireNotSent(t testing.TB, r Recorded, secret string) {
	t.Helper()
	for k, vs := range r.Header {
		for _, v := range vs {
			require.NotContains(t, v, secret, "header %s", k)
		}
	}
}
