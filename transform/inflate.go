package transform

import (
	"compress/gzip"
	"errors"
	"io"
	"iter"
	"sync"
)

// gunzipper decompresses a gzip stream pushed to it in chunks, for
// accounting only. compress/gzip pulls its input; running it as a coroutine
// (iter.Pull) lets it wait for the next chunk without a goroutine hand-off or
// a lock: write runs the decoder on the caller's thread until it has used the
// whole chunk, so the caller's chunk is never kept.
type gunzipper struct {
	in    []byte // the chunk being decoded
	eof   bool   // no chunk will follow
	err   error  // why decoding stopped early, if it did
	yield func(struct{}) bool
	next  func() (struct{}, bool)
	stop  func()
	out   func([]byte) bool // receives the decoded bytes; false: no more are wanted
	read  int64             // compressed bytes taken by the decoder
	made  int64             // decoded bytes
	limit int64             // maxInflated (tests lower it)
}

// Inflation bounds. Decoding is for accounting only, and the CPU it costs is
// proportional to the decoded bytes (0.2 to 2 s per GiB here, by content), so a small
// gzip bomb must not buy a worker's time: decoding stops, and the response
// counts as unreadable, when the decoded bytes pass maxInflated, or pass
// inflateRatioFrom while being more than maxInflateRatio times the
// compressed bytes. Real JSON and SSE bodies compress about 3 to 30 times;
// deflate's own limit is about 1032.
const (
	maxInflated      = 64 << 20
	inflateRatioFrom = 1 << 20
	maxInflateRatio  = 200
)

// ErrInflateLimit: a gzip body decoded to more than the inflation bounds
// allow; the meter gave up on it.
var ErrInflateLimit = errors.New("decoded size over the accounting limit (64 MiB, or 200 times the compressed size past 1 MiB)")

var gzipReaders sync.Pool // *gzip.Reader: each holds a 32 KiB window

var errStopped = errors.New("transform: gzip decoding stopped")

func newGunzipper(out func([]byte) bool) *gunzipper {
	g := &gunzipper{out: out, limit: maxInflated}
	g.next, g.stop = iter.Pull(g.run)
	return g
}

// write decodes chunk and hands the result to out before returning.
func (g *gunzipper) write(chunk []byte) {
	if g.next == nil || len(chunk) == 0 {
		return
	}
	g.in = chunk
	if _, ok := g.next(); !ok {
		g.next = nil
	}
	g.in = nil
}

// close ends the input; a truncated stream is an error.
func (g *gunzipper) close() error {
	g.eof = true
	if g.next != nil {
		g.next()
	}
	g.stop()
	g.next = nil
	return g.err
}

func (g *gunzipper) run(yield func(struct{}) bool) {
	g.yield = yield
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(g)
	} else {
		err = zr.Reset(g)
	}
	if err == nil {
		buf := make([]byte, 8<<10)
		for err == nil {
			var n int
			if n, err = zr.Read(buf); n > 0 {
				g.made += int64(n)
				if g.made > g.limit || g.made > inflateRatioFrom && g.made > maxInflateRatio*g.read {
					err = ErrInflateLimit
					break
				}
				if !g.out(buf[:n]) {
					err = errStopped // the reader wants no more: stop decoding
				}
			}
		}
	}
	if zr != nil {
		gzipReaders.Put(zr) // Reset makes it as good as new
	}
	if err != io.EOF && err != errStopped {
		g.err = err
	}
}

// Read gives the decoder the current chunk.
func (g *gunzipper) Read(p []byte) (int, error) {
	if err := g.wait(); err != nil {
		return 0, err
	}
	n := copy(p, g.in)
	g.in = g.in[n:]
	g.read += int64(n)
	return n, nil
}

// ReadByte keeps compress/flate from wrapping the reader in a bufio.Reader,
// which would read ahead.
func (g *gunzipper) ReadByte() (byte, error) {
	if err := g.wait(); err != nil {
		return 0, err
	}
	c := g.in[0]
	g.in = g.in[1:]
	g.read++
	return c, nil
}

// wait suspends the decoder until the next chunk when the current one is
// used up.
func (g *gunzipper) wait() error {
	for len(g.in) == 0 {
		if g.eof {
			return io.EOF // the decoder turns it into ErrUnexpectedEOF mid-stream
		}
		if !g.yield(struct{}{}) {
			return errStopped
		}
	}
	return nil
}
