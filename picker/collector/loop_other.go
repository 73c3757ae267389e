//go:build !linux

package collector

// eventLoop exists on Linux only (loop_linux.go): elsewhere every target
// has its own goroutine and scrapeConn.
type eventLoop struct{}

func theEventLoop() *eventLoop { return nil }

func (*eventLoop) post(loopCmd)              {}
func (*eventLoop) schedule(*loopConn, int64) {}

type loopCmd struct {
	kind cmdKind
	lc   *loopConn
}

type cmdKind uint8

const (
	cmdScrape cmdKind = iota
	cmdStop
)
