package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// scrapeConn is one target's keep-alive HTTP/1.1 connection, used only by
// the target's scrape goroutine. A scrape is one write of a request built
// once and reads straight into a reused buffer: no goroutines besides the
// scraper, no per-scrape allocations, no header maps. net/http costs about
// as much CPU as everything else in a scrape together (its read and write
// loops hand every request between three goroutines). It reads what
// /metrics answers: a 200 with Content-Length, chunked, or up to the close.
type scrapeConn struct {
	addr    string
	request []byte // the whole GET, built once
	dialer  net.Dialer

	conn   net.Conn
	reused bool // conn has served a response before
	stop   func() bool
	ctx    context.Context
}

// maxHeaderBytes bounds a response's status line and headers.
const maxHeaderBytes = 16 << 10

var errTimeout = fmt.Errorf("metrics: scrape timed out: %w", context.DeadlineExceeded)

func newScrapeConn(ctx context.Context, addr, path string) *scrapeConn {
	return &scrapeConn{addr: addr, request: scrapeRequest(addr, path), ctx: ctx, dialer: newDialer()}
}

// scrapeRequest is the whole GET a scrape sends.
func scrapeRequest(addr, path string) []byte {
	return []byte("GET " + requestTarget(path) + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUser-Agent: envoy-inferencepool-picker\r\nAccept: text/plain;version=0.0.4\r\n\r\n")
}

func newDialer() net.Dialer { return net.Dialer{KeepAlive: 30 * time.Second} }

// requestTarget percent-encodes the bytes a request line cannot carry
// (controls, blanks, non-ASCII), as net/http does when it parses a URL: a
// configured path can never end the request line or add a header.
func requestTarget(path string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c > ' ' && c < 0x7f {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// close drops the connection (after an error, or when the target stops).
func (c *scrapeConn) close() {
	if c.conn != nil {
		c.stop()
		_ = c.conn.Close()
		c.conn = nil
	}
}

// get fetches the exposition into buf[:0] and returns it. A body over
// maxBytes is errTooLarge (the connection is dropped rather than drained).
// A kept-alive connection the server has meanwhile closed is retried once
// on a new one, as net/http does.
func (c *scrapeConn) get(bufp *[]byte, timeout time.Duration, maxBytes int64) ([]byte, int, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		fresh := c.conn == nil
		if fresh {
			if err := c.dial(deadline); err != nil {
				return nil, 0, err
			}
		} else if err := c.conn.SetDeadline(deadline); err != nil {
			c.close()
			continue
		}
		body, status, keep, got, err := c.roundTrip(bufp, maxBytes)
		if err == nil {
			c.reused = true
			if !keep {
				c.close()
			}
			return body, status, nil
		}
		wasReused := c.reused
		c.close()
		if !fresh && wasReused && got == 0 && attempt == 0 && c.ctx.Err() == nil && !isTimeout(err) {
			continue // the server closed the idle connection under us
		}
		if isTimeout(err) {
			if c.ctx.Err() != nil {
				return nil, status, c.ctx.Err()
			}
			return nil, status, errTimeout
		}
		return nil, status, err
	}
}

func (c *scrapeConn) dial(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return err
	}
	c.conn, c.reused = conn, false
	// Releasing the target unblocks a scrape in flight at once.
	c.stop = context.AfterFunc(c.ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

var errTooLarge = errors.New("too large")

// roundTrip writes the request and reads one response. got is the number of
// response bytes read (0: the server closed without answering).
func (c *scrapeConn) roundTrip(bufp *[]byte, maxBytes int64) (body []byte, status int, keep bool, got int, err error) {
	if _, err := c.conn.Write(c.request); err != nil {
		return nil, 0, false, 0, err
	}
	return readResponse(c.conn, bufp, maxBytes)
}

// readResponse reads one response from r into *bufp.
func readResponse(r io.Reader, bufp *[]byte, maxBytes int64) (body []byte, status int, keep bool, got int, err error) {
	buf := (*bufp)[:0]
	defer func() { *bufp = buf[:0] }() // keep what the buffer grew to
	// Status line and headers.
	hdrEnd := -1
	for hdrEnd < 0 {
		if len(buf) >= maxHeaderBytes {
			return nil, 0, false, len(buf), errors.New("metrics: response headers too large")
		}
		if buf, err = readMore(r, buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, false, len(buf), err
		}
		hdrEnd = bytes.Index(buf, []byte("\r\n\r\n"))
	}
	h, err := parseHead(buf[:hdrEnd+2])
	if err != nil {
		return nil, 0, false, len(buf), err
	}
	start := hdrEnd + 4
	limit := int(min(maxBytes, 1<<40)) + 1 // read one byte past maxBytes to tell it is larger
	switch {
	case h.chunked:
		buf, body, err = readChunked(r, buf, start, limit)
	case h.length >= 0:
		if h.length >= int64(limit) {
			return nil, h.status, false, len(buf), errTooLarge
		}
		buf, body, err = readLength(r, buf, start, int(h.length))
		if err == nil && len(buf) > start+int(h.length) {
			h.keep = false // pipelined garbage after the body: do not reuse
		}
	default: // body until the server closes
		h.keep = false
		buf, body, err = readToClose(r, buf, start, limit)
	}
	if err != nil {
		return nil, h.status, false, len(buf), err
	}
	return body, h.status, h.keep, len(buf), nil
}

// readMore reads at least one more byte into buf, growing it if full.
func readMore(r io.Reader, buf []byte) ([]byte, error) {
	if len(buf) == cap(buf) {
		buf = append(buf, 0)[:len(buf)]
	}
	n, err := r.Read(buf[len(buf):cap(buf)])
	buf = buf[:len(buf)+n]
	if n > 0 {
		return buf, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return buf, err
}

type head struct {
	status  int
	length  int64 // -1: none
	chunked bool
	keep    bool
}

// parseHead reads the status line and the headers that frame the body.
func parseHead(b []byte) (head, error) {
	h := head{length: -1}
	http11 := false
	for i, c := range b { // bare CR or LF: not what any server writes, and read differently by others
		if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return h, errors.New("metrics: bare CR or LF in the response head")
		}
	}
	line, rest, _ := bytes.Cut(b, []byte("\r\n"))
	proto, code, ok := bytes.Cut(line, []byte(" "))
	switch string(proto) {
	case "HTTP/1.1":
		h.keep, http11 = true, true
	case "HTTP/1.0":
	default:
		return h, fmt.Errorf("metrics: not an HTTP/1.x response: %.40q", line)
	}
	if !ok || len(code) < 3 {
		return h, fmt.Errorf("metrics: bad status line %.40q", line)
	}
	st, err := strconv.Atoi(string(code[:3]))
	if err != nil || st < 200 || st > 999 || len(code) > 3 && code[3] != ' ' {
		return h, fmt.Errorf("metrics: bad status line %.40q", line) // 1xx included: never asked for
	}
	h.status = st
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return h, fmt.Errorf("metrics: bad header line %.40q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || h.length >= 0 && h.length != n {
				return h, fmt.Errorf("metrics: bad Content-Length %.40q", value)
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !http11 || !bytes.EqualFold(value, []byte("chunked")) { // HTTP/1.0 has no chunking: peers disagree on such a body
				return h, fmt.Errorf("metrics: unsupported Transfer-Encoding %.40q", value)
			}
			h.chunked = true
		case bytes.EqualFold(name, []byte("Content-Encoding")):
			if len(value) > 0 && !bytes.EqualFold(value, []byte("identity")) {
				return h, fmt.Errorf("metrics: unrequested Content-Encoding %.40q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				h.keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				h.keep = true
			}
		}
	}
	if h.chunked {
		h.length = -1 // Transfer-Encoding wins (RFC 9112 6.3)
	}
	return h, nil
}

func readLength(r io.Reader, buf []byte, start, n int) ([]byte, []byte, error) {
	wantTotal(r, start+n)
	if cap(buf) < start+n {
		buf = append(buf[:cap(buf)], make([]byte, start+n-cap(buf))...)[:len(buf)]
	}
	for len(buf) < start+n {
		var err error
		if buf, err = readMore(r, buf); err != nil {
			return buf, nil, unexpected(err)
		}
	}
	return buf, buf[start : start+n], nil
}

func readToClose(r io.Reader, buf []byte, start, limit int) ([]byte, []byte, error) {
	wantTotal(r, start+limit) // done at the close, or past the limit
	for len(buf)-start < limit {
		var err error
		if buf, err = readMore(r, buf); err == io.EOF {
			return buf, buf[start:], nil
		} else if err != nil {
			return buf, nil, err
		}
	}
	return buf, nil, errTooLarge
}

// maxChunkedOverhead bounds a chunked body's raw size as a multiple of the
// size limit: 1-byte chunks take 6 bytes each, but chunk extensions (up to
// a 1 KiB size line each) would let a server make the buffer grow far past
// maxBytes.
const maxChunkedOverhead = 8

// readChunked decodes a chunked body in place: the chunks' data is moved
// down over the size lines as they arrive. Trailers are read and ignored.
func readChunked(r io.Reader, buf []byte, start, limit int) ([]byte, []byte, error) {
	w, pos := start, start // decoded end, next unread raw byte
	for {
		// A chunk-size line.
		var nl int
		for {
			if nl = bytes.Index(buf[pos:], []byte("\r\n")); nl >= 0 {
				break
			}
			if len(buf)-pos > 1024 {
				return buf, nil, errors.New("metrics: bad chunk size line")
			}
			var err error
			if buf, err = readMore(r, buf); err != nil {
				return buf, nil, unexpected(err)
			}
		}
		sizeField, _, _ := bytes.Cut(buf[pos:pos+nl], []byte(";"))
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeField)), 16, 62)
		if err != nil {
			return buf, nil, errors.New("metrics: bad chunk size")
		}
		pos += nl + 2
		if size == 0 {
			break
		}
		if uint64(w-start)+size >= uint64(limit) {
			return buf, nil, errTooLarge
		}
		if pos-start > maxChunkedOverhead*limit { // the raw bytes are all kept: bound them too
			return buf, nil, errTooLarge
		}
		n := int(size)
		wantTotal(r, pos+n+2)
		for len(buf) < pos+n+2 {
			if buf, err = readMore(r, buf); err != nil {
				return buf, nil, unexpected(err)
			}
		}
		if buf[pos+n] != '\r' || buf[pos+n+1] != '\n' {
			return buf, nil, errors.New("metrics: bad chunk end")
		}
		copy(buf[w:], buf[pos:pos+n])
		w += n
		pos += n + 2
	}
	// Trailers, up to the empty line.
	for {
		nl := bytes.Index(buf[pos:], []byte("\r\n"))
		if nl < 0 {
			if len(buf)-pos > maxHeaderBytes {
				return buf, nil, errors.New("metrics: trailers too large")
			}
			var err error
			if buf, err = readMore(r, buf); err != nil {
				return buf, nil, unexpected(err)
			}
			continue
		}
		pos += nl + 2
		if nl == 0 {
			break
		}
	}
	if pos != len(buf) {
		return buf, nil, errors.New("metrics: bytes after the chunked body")
	}
	return buf, buf[start:w], nil
}

// wantTotal tells the event loop's reader (loop.go) that the response
// cannot move on before n bytes of it have arrived: the loop then does not
// parse it again before that. Other readers block for what they lack.
func wantTotal(r io.Reader, n int) {
	if sr, ok := r.(*sliceReader); ok {
		sr.want = n
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
