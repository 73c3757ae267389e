package collector

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"testing/iotest"
)

// FuzzReadResponse feeds arbitrary bytes as a scrape response, one byte per
// read: no panic, nothing past maxBytes, and a 200 it accepts has the
// status and body net/http reads from the same bytes, whenever net/http
// accepts them too.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("hello world", 4)))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nbody to the close"))
	f.Add([]byte("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"))
	const maxBytes = 64
	f.Fuzz(func(t *testing.T, raw []byte) {
		var buf []byte
		body, status, _, _, err := readResponse(iotest.OneByteReader(bytes.NewReader(raw)), &buf, maxBytes)
		if err != nil {
			return
		}
		if len(body) > maxBytes {
			t.Fatalf("accepted %d bytes, limit %d", len(body), maxBytes)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			return // net/http is stricter in places (header names, versions)
		}
		want, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return
		}
		if status != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("status %d body %q, net/http %d %q", status, body, resp.StatusCode, want)
		}
	})
}
