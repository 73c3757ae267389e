//go:build linux

package collector

import (
	"context"
	"time"
)

func loopPaths() []scrapePath {
	return []scrapePath{{
		name:      "event loop",
		collector: func() *Collector { return New(nil) },
		conn:      func(ctx context.Context, addr, path string) testConn { return newLoopTestConn(ctx, addr, path) },
	}}
}

// loopTestConn drives a loopConn one scrape at a time, as scrapeConn.get.
type loopTestConn struct {
	lc   *loopConn
	done chan struct{}
	// Written on the loop's goroutine before done is signalled.
	buf    *[]byte
	body   []byte
	status int
	err    error
	conn   bool
}

func newLoopTestConn(ctx context.Context, addr, path string) *loopTestConn {
	c := &loopTestConn{done: make(chan struct{}, 1)}
	c.lc = newLoopConn(ctx, addr, path, 0, 0, nil, c)
	return c
}

func (c *loopTestConn) get(bufp *[]byte, timeout time.Duration, maxBytes int64) ([]byte, int, error) {
	c.lc.timeout, c.lc.maxBytes, c.buf = timeout, maxBytes, bufp
	theEventLoop().post(loopCmd{kind: cmdScrape, lc: c.lc})
	<-c.done
	return c.body, c.status, c.err
}

func (c *loopTestConn) scrapeStarted() {}

func (c *loopTestConn) scrapeDone(body []byte, status int, err error) {
	c.body = nil
	if body != nil {
		*c.buf = append((*c.buf)[:0], body...)
		c.body = *c.buf
	}
	c.status, c.err, c.conn = status, err, c.lc.fd >= 0
	c.done <- struct{}{}
}

func (c *loopTestConn) scrapeStopped() {}

func (c *loopTestConn) close() { theEventLoop().post(loopCmd{kind: cmdStop, lc: c.lc}) }

func (c *loopTestConn) connected() bool { return c.conn }
