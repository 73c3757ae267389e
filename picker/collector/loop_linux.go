//go:build linux

package collector

import (
	"container/heap"
	"context"
	"errors"
	"log"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// eventLoop scrapes every target of the process from one goroutine on its
// own thread, over non-blocking sockets in one epoll set. On each wake it
// writes the requests of every target due, and reads answers as epoll
// reports them readable, parsing each where it was read: no goroutine
// wakes per scrape, no netpoller handoff, no per-scrape timer (the loop
// checks its scrapes' deadlines whenever it wakes, and sleeps in
// epoll_wait until the next due scrape or deadline). Connecting, which may
// resolve names, is done by a goroutine per dial that hands the connected
// socket over.
type eventLoop struct {
	epfd, efd int

	mu    sync.Mutex
	queue []loopCmd // commands from other goroutines
	spare []loopCmd
	woken bool // an eventfd write since the last drain

	// Owned by the loop's goroutine.
	conns    map[int32]*loopConn
	sched    dueHeap
	active   []*loopConn // scrapes in flight (dialing, writing, reading)
	events   []unix.EpollEvent
	scratch  []byte // where reads land first
	parseBuf []byte // readResponse's buffer
	reader   sliceReader
	bufs     [][]byte // free buffers for responses in several reads
}

type cmdKind uint8

const (
	cmdScrape cmdKind = iota // scrape now
	cmdStop                  // the conn's context ended
	cmdDialed                // a dial finished
)

type loopCmd struct {
	kind cmdKind
	lc   *loopConn
	seq  uint64
	fd   int
	err  error
}

var (
	loopOnce   sync.Once
	sharedLoop *eventLoop // nil: the loop could not start, targets use goroutines
)

// theEventLoop returns the process's event loop, starting it on first use;
// nil if epoll is unavailable.
func theEventLoop() *eventLoop {
	loopOnce.Do(func() {
		l, err := newEventLoop()
		if err != nil {
			log.Printf("picker/collector: no event loop, one goroutine per target: %v", err)
			return
		}
		sharedLoop = l
		go l.run()
	})
	return sharedLoop
}

func newEventLoop() (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &eventLoop{
		epfd: epfd, efd: efd,
		conns:    make(map[int32]*loopConn),
		events:   make([]unix.EpollEvent, 256),
		scratch:  make([]byte, initialBuffer),
		parseBuf: make([]byte, 0, initialBuffer),
	}, nil
}

// post hands a command to the loop from any goroutine.
func (l *eventLoop) post(c loopCmd) {
	l.mu.Lock()
	l.queue = append(l.queue, c)
	wake := !l.woken
	l.woken = true
	l.mu.Unlock()
	if wake {
		one := [8]byte{1}
		_, _ = unix.Write(l.efd, one[:])
	}
}

func (l *eventLoop) run() {
	for !l.runSafely() {
	}
}

// runSafely runs the loop, returning false after a panic: the loop runs
// inside Envoy, where an unrecovered panic ends the process.
func (l *eventLoop) runSafely() (ended bool) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("picker/collector: event loop panic: %v", r)
			time.Sleep(10 * time.Millisecond) // a panic that repeats does not spin
			ended = false
		}
	}()
	for {
		// Through the scheduler once a wake: a goroutine that never is
		// gets preempted by sysmon every 10 ms, which then retakes its P in
		// the next epoll_wait and polls every 20 µs for a millisecond.
		runtime.Gosched()
		n, err := rawEpollWait(l.epfd, l.events) // events ready already: no blocking syscall
		if n == 0 && err == 0 {
			var werr error
			n, werr = unix.EpollWait(l.epfd, l.events, l.waitMillis())
			if werr != nil && werr != unix.EINTR {
				log.Printf("picker/collector: epoll_wait: %v", werr)
				time.Sleep(10 * time.Millisecond)
			}
		}
		for i := range max(n, 0) {
			ev := &l.events[i]
			if ev.Fd == int32(l.efd) {
				var b [8]byte
				_, _ = unix.Read(l.efd, b[:])
				continue
			}
			lc := l.conns[ev.Fd]
			if lc == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && lc.state == connWriting {
				l.write(lc)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && lc.fd == int(ev.Fd) {
				l.readable(lc)
			}
		}
		l.commands()
		now := Now()
		l.expire(now)
		for len(l.sched) > 0 && l.sched[0].due <= now {
			lc := heap.Pop(&l.sched).(*loopConn)
			l.begin(lc)
		}
	}
}

// waitMillis is epoll_wait's timeout: until the next scrape due or the
// first deadline, rounded up to a millisecond; -1 when there is none.
func (l *eventLoop) waitMillis() int {
	next := int64(math.MaxInt64)
	if len(l.sched) > 0 {
		next = l.sched[0].due
	}
	for _, lc := range l.active {
		next = min(next, lc.deadline)
	}
	if next == math.MaxInt64 {
		return -1
	}
	d := next - Now()
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), math.MaxInt32))
}

func (l *eventLoop) commands() {
	l.mu.Lock()
	q := l.queue
	l.queue, l.spare = l.spare[:0], q
	l.woken = false
	l.mu.Unlock()
	for i := range q {
		c := &q[i]
		switch c.kind {
		case cmdScrape:
			if c.lc.dead {
				break
			}
			if c.lc.heapIdx >= 0 { // due later: a probe wants it now
				heap.Remove(&l.sched, c.lc.heapIdx)
			}
			if c.lc.activeAt < 0 && c.lc.state != connQueued {
				if lc := c.lc; !lc.watched {
					lc.watched = true
					context.AfterFunc(lc.ctx, func() { l.post(loopCmd{kind: cmdStop, lc: lc}) })
				}
				l.begin(c.lc)
			}
		case cmdStop:
			l.stop(c.lc)
		case cmdDialed:
			l.dialed(c)
		}
		*c = loopCmd{}
	}
}

// schedule puts lc's next scrape at due.
func (l *eventLoop) schedule(lc *loopConn, due int64) {
	if lc.dead || lc.heapIdx >= 0 {
		return
	}
	lc.due = due
	heap.Push(&l.sched, lc)
}

// begin starts a scrape of lc, or queues it behind its group's limit.
func (l *eventLoop) begin(lc *loopConn) {
	if lim := lc.lim; lim != nil {
		if lim.n >= lim.max {
			lc.state = connQueued
			lim.waiting = append(lim.waiting, lc)
			return
		}
		lim.n++
	}
	lc.owner.scrapeStarted()
	lc.deadline = Now() + int64(lc.timeout)
	lc.attempt = 0
	lc.activeAt = len(l.active)
	l.active = append(l.active, lc)
	l.connectOrSend(lc)
}

func (l *eventLoop) connectOrSend(lc *loopConn) {
	lc.fresh = lc.fd < 0
	if lc.fresh {
		l.dial(lc)
		return
	}
	lc.state, lc.wrote = connWriting, 0
	l.write(lc)
}

// dial connects on a goroutine: names may need resolving, and connecting
// is once per connection, not per scrape.
func (l *eventLoop) dial(lc *loopConn) {
	lc.state = connDialing
	lc.seq++
	seq := lc.seq
	deadline := epoch.Add(time.Duration(lc.deadline))
	go func() {
		fd, err := dialFD(lc.ctx, &lc.dialer, lc.addr, deadline)
		l.post(loopCmd{kind: cmdDialed, lc: lc, seq: seq, fd: fd, err: err})
	}()
}

// dialFD connects with net.Dialer and keeps a duplicate of the socket
// (non-blocking, as the net package left it; keep-alive and TCP_NODELAY
// set), closing the net.Conn.
func dialFD(ctx context.Context, d *net.Dialer, addr string, deadline time.Time) (int, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return -1, err
	}
	defer func() { _ = conn.Close() }()
	sc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := sc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

func (l *eventLoop) dialed(c *loopCmd) {
	lc := c.lc
	if lc.dead || c.seq != lc.seq || lc.state != connDialing {
		if c.fd >= 0 {
			_ = unix.Close(c.fd)
		}
		return
	}
	if c.err != nil {
		l.fail(lc, c.err, 0, 0)
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		_ = unix.Close(c.fd)
		l.fail(lc, os.NewSyscallError("epoll_ctl", err), 0, 0)
		return
	}
	lc.fd, lc.reused = c.fd, false
	l.conns[int32(c.fd)] = lc
	lc.state, lc.wrote = connWriting, 0
	l.write(lc)
}

// write sends (the rest of) the request, then waits for the answer.
func (l *eventLoop) write(lc *loopConn) {
	for lc.wrote < len(lc.request) {
		n, err := rawSend(lc.fd, lc.request[lc.wrote:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if !lc.wantOut {
				lc.wantOut = true
				l.watch(lc, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLOUT)
			}
			return
		case err != 0:
			l.fail(lc, os.NewSyscallError("write", err), 0, 0)
			return
		}
		lc.wrote += n
	}
	if lc.wantOut {
		lc.wantOut = false
		l.watch(lc, unix.EPOLLIN|unix.EPOLLRDHUP)
	}
	lc.state, lc.raw, lc.want = connReading, nil, 0
}

func (l *eventLoop) watch(lc *loopConn, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(lc.fd)}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, lc.fd, &ev)
}

// readable reads what arrived on lc's socket: the answer it waits for, or,
// on a connection not waiting for one, the server closing it (or bytes
// nobody asked for): either way the connection is dropped.
func (l *eventLoop) readable(lc *loopConn) {
	switch lc.state {
	case connReading:
		l.read(lc)
	case connWriting:
		l.fail(lc, errEarlyAnswer, 1, 0)
	default:
		l.closeConn(lc)
	}
}

var errEarlyAnswer = errors.New("metrics: the server answered before the request was sent")

func (l *eventLoop) read(lc *loopConn) {
	buf := lc.raw
	if buf == nil {
		buf = l.scratch[:0]
	} else if len(buf) == cap(buf) {
		buf = append(buf, 0)[:len(buf)]
	}
	n, errno := rawRead(lc.fd, buf[len(buf):cap(buf)])
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return
	}
	if errno != 0 {
		l.fail(lc, os.NewSyscallError("read", errno), len(buf), 0)
		return
	}
	buf = buf[:len(buf)+n]
	eof := n == 0
	if !eof && len(buf) < lc.want {
		l.keepRaw(lc, buf)
		return
	}
	body, status, keep, got, want, err := arrived(&l.reader, buf, eof, &l.parseBuf, lc.maxBytes)
	if err == errNeedMore {
		l.keepRaw(lc, buf)
		lc.want = want
		return
	}
	if lc.raw != nil {
		l.putBuf(lc.raw)
		lc.raw = nil
	}
	if err != nil {
		l.fail(lc, err, got, status)
		return
	}
	lc.reused = true
	if !keep {
		l.closeConn(lc)
	}
	l.finish(lc, body, status, nil)
	if cap(l.parseBuf) > maxPooledBuffer {
		l.parseBuf = make([]byte, 0, initialBuffer)
	}
}

// keepRaw keeps a response's bytes so far in lc's own buffer.
func (l *eventLoop) keepRaw(lc *loopConn, buf []byte) {
	if lc.raw != nil {
		lc.raw = buf
		return
	}
	var own []byte
	if k := len(l.bufs); k > 0 {
		own, l.bufs = l.bufs[k-1][:0], l.bufs[:k-1]
	} else {
		own = make([]byte, 0, initialBuffer)
	}
	lc.raw = append(own, buf...)
}

func (l *eventLoop) putBuf(b []byte) {
	if cap(b) <= maxPooledBuffer && len(l.bufs) < 64 {
		l.bufs = append(l.bufs, b[:0])
	}
}

// fail ends the attempt with err (got: response bytes read), retrying once
// on a new connection when a kept-alive one was closed under the request.
func (l *eventLoop) fail(lc *loopConn, err error, got, status int) {
	wasReused := lc.reused
	l.closeConn(lc)
	if lc.raw != nil {
		l.putBuf(lc.raw)
		lc.raw = nil
	}
	if !lc.fresh && wasReused && got == 0 && lc.attempt == 0 && lc.ctx.Err() == nil && !isTimeout(err) {
		lc.attempt++
		lc.fresh = true
		l.dial(lc)
		return
	}
	if isTimeout(err) {
		if e := lc.ctx.Err(); e != nil {
			err = e
		} else {
			err = errTimeout
		}
	}
	l.finish(lc, nil, status, err)
}

// finish ends lc's scrape, frees its slot and tells its owner.
func (l *eventLoop) finish(lc *loopConn, body []byte, status int, err error) {
	if i := lc.activeAt; i >= 0 {
		last := l.active[len(l.active)-1]
		l.active[i], last.activeAt = last, i
		l.active = l.active[:len(l.active)-1]
		lc.activeAt = -1
	}
	lc.state = connIdle
	if lim := lc.lim; lim != nil {
		lim.n--
		for lim.n < lim.max && len(lim.waiting) > 0 {
			next := lim.waiting[0]
			lim.waiting = lim.waiting[1:]
			next.state = connIdle
			l.begin(next)
		}
	}
	lc.owner.scrapeDone(body, status, err)
}

// expire ends the scrapes past their deadline.
func (l *eventLoop) expire(now int64) {
	for i := len(l.active) - 1; i >= 0; i-- {
		if i >= len(l.active) {
			continue
		}
		if lc := l.active[i]; lc.deadline <= now {
			if lc.state == connDialing {
				lc.seq++ // its result, when it comes, is dropped
			}
			lc.attempt = 1 // no retry
			l.fail(lc, os.ErrDeadlineExceeded, 0, 0)
		}
	}
}

// stop ends lc for good: its scrape in flight ends with the context's
// error, its connection closes.
func (l *eventLoop) stop(lc *loopConn) {
	if lc.dead {
		return
	}
	lc.dead = true
	if lc.heapIdx >= 0 {
		heap.Remove(&l.sched, lc.heapIdx)
	}
	if lc.state == connQueued {
		w := lc.lim.waiting
		for i, o := range w {
			if o == lc {
				lc.lim.waiting = append(w[:i:i], w[i+1:]...)
				break
			}
		}
		lc.state = connIdle
	}
	if lc.activeAt >= 0 {
		lc.seq++
		lc.attempt = 1
		l.fail(lc, context.Cause(lc.ctx), 0, 0)
	}
	l.closeConn(lc)
	lc.owner.scrapeStopped()
}

func (l *eventLoop) closeConn(lc *loopConn) {
	if lc.fd < 0 {
		return
	}
	delete(l.conns, int32(lc.fd))
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, lc.fd, nil)
	_ = unix.Close(lc.fd)
	lc.fd, lc.wantOut = -1, false
}

// The loop's socket calls never block (non-blocking sockets, epoll_wait
// without a timeout), so they are raw system calls: entersyscall and
// exitsyscall would each cost more than a loopback read, and a goroutine
// entering a system call wakes sysmon from its deep sleep into 1 ms of
// polling every 20 µs. Only the epoll_wait that sleeps is a normal one.

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func rawSend(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func rawEpollWait(epfd int, events []unix.EpollEvent) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// dueHeap orders scheduled conns by due time.
type dueHeap []*loopConn

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *dueHeap) Push(x any) {
	lc := x.(*loopConn)
	lc.heapIdx = len(*h)
	*h = append(*h, lc)
}
func (h *dueHeap) Pop() any {
	old := *h
	lc := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	lc.heapIdx = -1
	return lc
}
