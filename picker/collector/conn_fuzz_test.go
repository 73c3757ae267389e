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

// FuzzArrivedInPieces feeds a response as the event loop receives it, in
// pieces (sizes from cuts), parsing again only once the length it asked for
// has arrived (want): the outcome is the one of parsing after every piece,
// and once the server has closed there is always an outcome.
func FuzzArrivedInPieces(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), []byte{3, 20, 1})
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked("hello world", 4)), []byte{40, 2, 2, 2, 9})
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nbody to the close"), []byte{1})
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), []byte{50})
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloXY"), []byte{37, 4}) // a piece ends with the body
	const maxBytes = 64
	type outcome struct {
		at     int // bytes arrived when it ended
		body   string
		status int
		err    string
	}
	run := func(raw, cuts []byte, skip bool) outcome {
		var r sliceReader
		var buf []byte
		want := 0
		for n, i := 0, 0; ; i++ {
			step := len(raw)
			if len(cuts) > 0 {
				step = 1 + int(cuts[i%len(cuts)]%64)
			}
			n = min(n+step, len(raw))
			eof := n == len(raw)
			if skip && !eof && n < want {
				continue
			}
			body, status, _, _, w, err := arrived(&r, raw[:n], eof, &buf, maxBytes)
			if err == errNeedMore {
				if eof {
					return outcome{at: -1, err: "needs more after the close"}
				}
				want = w
				continue
			}
			o := outcome{at: n, body: string(body), status: status}
			if err != nil {
				o.err = err.Error()
			}
			return o
		}
	}
	f.Fuzz(func(t *testing.T, raw, cuts []byte) {
		every, skipping := run(raw, cuts, false), run(raw, cuts, true)
		if every.at < 0 || every != skipping {
			t.Fatalf("parsed after every piece %+v, after the length asked for %+v", every, skipping)
		}
		if every.err == "" && len(every.body) > maxBytes {
			t.Fatalf("accepted %d bytes, limit %d", len(every.body), maxBytes)
		}
	})
}
