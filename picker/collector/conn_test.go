package collector

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawServer answers every request on 127.0.0.1 with respond's bytes, then
// keeps the connection (keep) or closes it. It counts connections.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int64
	reqs  atomic.Int64
}

func newRawServer(t *testing.T, keep bool, respond func(n int64) string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer func() { _ = c.Close() }()
				r := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					n := s.reqs.Add(1)
					if req.URL.Path != "/metrics" || req.Header.Get("Accept-Encoding") != "" {
						_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
						return
					}
					if _, err := c.Write([]byte(respond(n))); err != nil || !keep {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func chunked(body string, size int) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(size, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func TestScrapeConnFraming(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			big := okBody + strings.Repeat("# HELP x padding\n", 4000) // past every buffer size
			for _, tc := range []struct {
				name      string
				keep      bool
				response  string
				wantBody  string
				wantConns int64 // after 3 scrapes
			}{
				{"content-length, kept alive", true, "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(okBody)) + "\r\n\r\n" + okBody, okBody, 1},
				{"chunked, kept alive", true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(big, 3000), big, 1},
				{"chunk extensions and trailers", true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nvllm:\r\n" + chunked(okBody[5:], 7)[:len(chunked(okBody[5:], 7))-2] + "X-T: 1\r\n\r\n", okBody, 1},
				{"Connection: close", true, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " + fmt.Sprint(len(okBody)) + "\r\n\r\n" + okBody, okBody, 3},
				{"HTTP/1.0 to the close", false, "HTTP/1.0 200 OK\r\n\r\n" + okBody, okBody, 3},
				{"big content-length body", true, "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\n\r\n" + big, big, 1},
			} {
				t.Run(tc.name, func(t *testing.T) {
					srv := newRawServer(t, tc.keep, func(int64) string { return tc.response })
					c := p.conn(context.Background(), srv.addr(), "/metrics")
					defer c.close()
					var buf []byte
					for range 3 {
						body, status, err := c.get(&buf, 5*time.Second, 1<<20)
						require.NoError(t, err)
						require.Equal(t, 200, status)
						require.Equal(t, tc.wantBody, string(body))
					}
					require.Equal(t, tc.wantConns, srv.conns.Load())
				})
			}
		})
	}
}

// Hostile or broken upstreams: an error, never a panic, a hang or an
// unbounded read.
func TestScrapeConnRejects(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			for _, tc := range []struct{ name, response, wantErr string }{
				{"headers without end", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 64<<10), "headers too large"},
				{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x response"},
				{"1xx", "HTTP/1.1 100 Continue\r\n\r\n", "bad status line"},
				{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"},
				{"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
				{"conflicting content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "bad Content-Length"},
				{"gzip nobody asked for", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n", "Content-Encoding"},
				{"other transfer-encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"},
				{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"},
				{"huge chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", "bad chunk size"},
				{"chunk past the limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n", "too large"},
				{"content-length past the limit", "HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n", "too large"},
				{"body to the close past the limit", "HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("a", 1<<20+1), "too large"},
				{"chunk extensions past the limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("x", 1000)+"\r\na\r\n", 9000) + "0\r\n\r\n", "too large"},
				{"chunk without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n", "bad chunk end"},
				{"cut body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "unexpected EOF"},
				{"cut headers", "HTTP/1.1 200 OK\r\nContent-Len", "unexpected EOF"},
				{"bad header line", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					srv := newRawServer(t, false, func(int64) string { return tc.response })
					c := p.conn(context.Background(), srv.addr(), "/metrics")
					defer c.close()
					var buf []byte
					_, _, err := c.get(&buf, 5*time.Second, 1<<20)
					require.ErrorContains(t, err, tc.wantErr)
					require.False(t, c.connected(), "a connection that failed is not reused")
				})
			}
		})
	}
}

// A keep-alive connection the server closed while idle is replaced at once:
// the scrape succeeds on a new connection.
func TestScrapeConnRetriesClosedIdleConnection(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			resp := "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(okBody)) + "\r\n\r\n" + okBody
			srv := newRawServer(t, false, func(int64) string { return resp }) // closes after each answer, without saying so
			c := p.conn(context.Background(), srv.addr(), "/metrics")
			defer c.close()
			var buf []byte
			for range 3 {
				time.Sleep(20 * time.Millisecond) // let the close arrive
				body, _, err := c.get(&buf, 5*time.Second, 1<<20)
				require.NoError(t, err)
				require.Equal(t, okBody, string(body))
			}
			require.Equal(t, int64(3), srv.conns.Load())
		})
	}
}

// Releasing the target ends a scrape in flight without waiting for its timeout.
func TestScrapeConnCancel(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer func() { _ = ln.Close() }()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					time.Sleep(10 * time.Second)
					_ = c.Close()
				}
			}()
			ctx, cancel := context.WithCancel(context.Background())
			c := p.conn(ctx, ln.Addr().String(), "/metrics")
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			var buf []byte
			_, _, err = c.get(&buf, 30*time.Second, 1<<20)
			require.ErrorIs(t, err, context.Canceled)
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// Scrapes through a target reuse one connection, whether the server sends
// Content-Length (small body) or chunks (a Go server writing 54 KB).
func TestScrapeKeepsConnectionAlive(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			fixture, err := os.ReadFile("../testdata/vllm_metrics_v0.10.2_full.txt")
			require.NoError(t, err)
			for name, body := range map[string]string{"small": okBody, "vLLM fixture, chunked": string(fixture)} {
				t.Run(name, func(t *testing.T) {
					var conns atomic.Int64
					srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						_, _ = w.Write([]byte(body))
					}))
					srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
						if s == http.StateNew {
							conns.Add(1)
						}
					}
					srv.Start()
					defer srv.Close()
					spec := testSpec(t)
					tg := detached(p.collector(), strings.TrimPrefix(srv.URL, "http://"), spec)
					defer tg.closeConn()
					for range 5 {
						tg.scrapeOnce(&spec)
						require.NotNil(t, tg.Sample(), tg.Stats().LastError)
					}
					require.Equal(t, int64(1), conns.Load())
				})
			}
		})
	}
}

func TestRequestTargetCannotBreakTheRequestLine(t *testing.T) {
	require.Equal(t, "/metrics?name%5B%5D=x", requestTarget("/metrics?name%5B%5D=x"))
	require.Equal(t, "/m%20HTTP/1.1%0D%0AX-Evil:%201", requestTarget("/m HTTP/1.1\r\nX-Evil: 1"))
	require.Equal(t, "/%C3%A9%7F%00", requestTarget("/é\x7f\x00"))
	c := newScrapeConn(context.Background(), "10.0.0.1:8000", "/a b\r\n")
	require.Equal(t, "GET /a%20b%0D%0A HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n", string(c.request[:strings.Index(string(c.request), "User-Agent")]))
}

// A request larger than the socket buffers is written in several tries
// (on the loop: the rest when epoll reports the socket writable).
func TestScrapeConnLongRequest(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer func() { _ = ln.Close() }()
			resp := "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(okBody)) + "\r\n\r\n" + okBody
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer func() { _ = c.Close() }()
				time.Sleep(100 * time.Millisecond) // let the client's socket buffers fill up
				r := bufio.NewReader(c)
				for { // the request's lines, up to the empty one
					line, err := r.ReadSlice('\n')
					if err == bufio.ErrBufferFull {
						continue
					}
					if err != nil {
						return
					}
					if string(line) == "\r\n" {
						break
					}
				}
				_, _ = c.Write([]byte(resp))
			}()
			c := p.conn(context.Background(), ln.Addr().String(), "/metrics?"+strings.Repeat("a", 16<<20))
			defer c.close()
			var buf []byte
			body, status, err := c.get(&buf, 30*time.Second, 1<<20)
			require.NoError(t, err)
			require.Equal(t, 200, status)
			require.Equal(t, okBody, string(body))
		})
	}
}
