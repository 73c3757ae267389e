package collector

import (
	"context"
	"time"
)

// testConn is one target's connection as the conn tests drive it: a
// scrapeConn (a goroutine per target) or a loopConn (the event loop).
type testConn interface {
	get(bufp *[]byte, timeout time.Duration, maxBytes int64) ([]byte, int, error)
	close()
	connected() bool
}

// scrapePath is one of the ways targets are scraped; the tests of
// scraping run on each.
type scrapePath struct {
	name      string
	collector func() *Collector
	conn      func(ctx context.Context, addr, path string) testConn
}

func scrapePaths() []scrapePath {
	return append([]scrapePath{{
		name: "goroutine per target",
		collector: func() *Collector {
			c := New(nil)
			c.goroutines = true
			return c
		},
		conn: func(ctx context.Context, addr, path string) testConn { return newScrapeConn(ctx, addr, path) },
	}}, loopPaths()...)
}

func (c *scrapeConn) connected() bool { return c.conn != nil }

// closeConn drops a detached target's connection.
func (t *Target) closeConn() {
	if t.conn != nil {
		t.conn.close()
	}
	if t.loop.conn != nil {
		t.loop.l.post(loopCmd{kind: cmdStop, lc: t.loop.conn})
	}
}
