package prefix

import (
	"sync"
	"sync/atomic"
	"time"
)

// Index remembers, per endpoint, the prefix block hashes of the requests
// sent to it, in an LRU of fixed capacity per endpoint. Lookups (every pick)
// take a shard read lock. Updates are queued by the pick and applied in
// batches about a millisecond later by a timer goroutine, so a pick neither
// waits for the map writes nor pays for waking a writer.
//
// Hashes of one request are inserted deepest first, so a request's first
// blocks are always the most recently used: what an endpoint holds of a
// chain is then always a leading run of it, and matching can binary-search
// the chain instead of probing every block.
type Index struct {
	capacity int
	shards   [numShards]shard
	dropped  atomic.Uint64
	entries  atomic.Int64

	mu        sync.Mutex // guards the queue and free records
	queue     []*record
	free      []*record // applied records, reused: no garbage per pick
	scheduled bool
	closed    bool
	timer     *time.Timer

	applyMu      sync.Mutex // held while applying; guards what follows
	batch        []*record
	lists        []lru
	spare        *node    // free nodes
	spareEntries []*entry // free entries, holders slices kept
}

const (
	numShards = 32
	// flushDelay batches updates: one timer firing per millisecond at most.
	flushDelay = time.Millisecond
	// maxQueued bounds the updates waiting for a flush (a million picks a
	// second at one flush per millisecond); more are dropped.
	maxQueued = 1024
)

type shard struct {
	mu sync.RWMutex
	m  map[uint64]*entry
	_  [40]byte // keep shards on separate cache lines
}

// entry lists the endpoints holding one hash. Few endpoints hold any given
// prefix, so a slice beats a set.
type entry struct{ holders []holder }

type holder struct {
	id   int32
	node *node
}

// node is one (hash, endpoint) in that endpoint's LRU list.
type node struct {
	hash       uint64
	id         int32
	prev, next *node
}

type lru struct {
	head, tail *node // head is the most recently used
	n          int
}

type record struct {
	id     int32
	forget bool
	hashes []uint64
}

// NewIndex returns an index keeping up to capacity hashes per endpoint.
// Close it to stop its timer.
func NewIndex(capacity int) *Index {
	x := &Index{capacity: capacity}
	for i := range x.shards {
		x.shards[i].m = make(map[uint64]*entry)
	}
	x.timer = time.AfterFunc(time.Hour, x.Flush)
	x.timer.Stop()
	return x
}

// Close stops the timer; queued updates are dropped.
func (x *Index) Close() {
	x.mu.Lock()
	x.closed = true
	x.timer.Stop()
	x.queue = nil
	x.mu.Unlock()
	x.applyMu.Lock() // wait for a flush in progress
	x.applyMu.Unlock()
}

// Record queues "the blocks hashes were sent to endpoint id". When too many
// updates wait, the record is dropped and counted: losing some affinity
// under overload is better than slowing picks.
func (x *Index) Record(id int32, hashes []uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed || len(x.queue) >= maxQueued {
		x.dropped.Add(1)
		return
	}
	var r *record
	if n := len(x.free); n > 0 {
		r = x.free[n-1]
		x.free = x.free[:n-1]
	} else {
		r = &record{}
	}
	r.id, r.forget = id, false
	r.hashes = append(r.hashes[:0], hashes...)
	x.queue = append(x.queue, r)
	x.schedule()
}

// Forget queues the removal of everything endpoint id holds, for an endpoint
// that left the pool (its id may be reused). It is never dropped.
func (x *Index) Forget(id int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.queue = append(x.queue, &record{id: id, forget: true})
		x.schedule()
	}
}

// schedule arms the flush timer unless it is armed; x.mu is held.
func (x *Index) schedule() {
	if !x.scheduled {
		x.scheduled = true
		x.timer.Reset(flushDelay)
	}
}

// Flush applies every queued update now. The timer calls it; tests and
// benchmarks call it to see updates at once.
func (x *Index) Flush() {
	x.applyMu.Lock()
	defer x.applyMu.Unlock()
	x.mu.Lock()
	batch := x.queue
	x.queue = x.batch[:0]
	x.scheduled = false
	x.mu.Unlock()
	for _, r := range batch {
		x.apply(r)
	}
	x.mu.Lock()
	for i, r := range batch {
		if !r.forget {
			x.free = append(x.free, r)
		}
		batch[i] = nil
	}
	x.mu.Unlock()
	x.batch = batch
}

// Dropped returns how many updates were dropped because too many waited.
func (x *Index) Dropped() uint64 { return x.dropped.Load() }

// Entries returns the number of distinct hashes held by any endpoint.
func (x *Index) Entries() int64 { return x.entries.Load() }

// Holders calls fn with the id of each endpoint holding h, under a read lock:
// fn must be quick and must not call back into the index. It stops when fn
// returns false and reports whether fn ever did.
func (x *Index) Holders(h uint64, fn func(id int32) bool) bool {
	sh := &x.shards[h%numShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if e := sh.m[h]; e != nil {
		for _, hd := range e.holders {
			if !fn(hd.id) {
				return true
			}
		}
	}
	return false
}

func (x *Index) apply(r *record) {
	if r.forget {
		x.forget(r.id)
		return
	}
	for i := len(r.hashes) - 1; i >= 0; i-- {
		x.touch(r.id, r.hashes[i])
	}
}

func (x *Index) list(id int32) *lru {
	for int(id) >= len(x.lists) {
		x.lists = append(x.lists, lru{})
	}
	return &x.lists[id]
}

// touch makes h the most recently used hash of endpoint id.
func (x *Index) touch(id int32, h uint64) {
	l := x.list(id)
	sh := &x.shards[h%numShards]
	sh.mu.Lock()
	e := sh.m[h]
	if e != nil {
		for _, hd := range e.holders {
			if hd.id == id {
				sh.mu.Unlock()
				l.moveToFront(hd.node)
				return
			}
		}
	} else {
		e = x.newEntry()
		sh.m[h] = e
		x.entries.Add(1)
	}
	nd := x.newNode(h, id)
	e.holders = append(e.holders, holder{id: id, node: nd})
	sh.mu.Unlock()

	l.pushFront(nd)
	if l.n > x.capacity {
		x.remove(l.popBack())
	}
}

// remove drops nd's (hash, endpoint) from the map; nd is already unlinked.
func (x *Index) remove(nd *node) {
	sh := &x.shards[nd.hash%numShards]
	sh.mu.Lock()
	if e := sh.m[nd.hash]; e != nil {
		for i, hd := range e.holders {
			if hd.node == nd {
				last := len(e.holders) - 1
				e.holders[i] = e.holders[last]
				e.holders[last] = holder{}
				e.holders = e.holders[:last]
				break
			}
		}
		if len(e.holders) == 0 {
			delete(sh.m, nd.hash)
			x.entries.Add(-1)
			// No reader can still see e: they hold the shard's read lock
			// while they look, and it was removed under the write lock.
			x.spareEntries = append(x.spareEntries, e)
		}
	}
	sh.mu.Unlock()
	nd.next = x.spare
	x.spare = nd
}

func (x *Index) forget(id int32) {
	if int(id) >= len(x.lists) {
		return
	}
	l := &x.lists[id]
	for l.n > 0 {
		x.remove(l.popBack())
	}
}

func (x *Index) newEntry() *entry {
	if n := len(x.spareEntries); n > 0 {
		e := x.spareEntries[n-1]
		x.spareEntries = x.spareEntries[:n-1]
		return e
	}
	return &entry{holders: make([]holder, 0, 2)}
}

func (x *Index) newNode(h uint64, id int32) *node {
	nd := x.spare
	if nd == nil {
		nd = &node{}
	} else {
		x.spare = nd.next
	}
	*nd = node{hash: h, id: id}
	return nd
}

func (l *lru) pushFront(nd *node) {
	nd.prev, nd.next = nil, l.head
	if l.head != nil {
		l.head.prev = nd
	} else {
		l.tail = nd
	}
	l.head = nd
	l.n++
}

func (l *lru) unlink(nd *node) {
	if nd.prev != nil {
		nd.prev.next = nd.next
	} else {
		l.head = nd.next
	}
	if nd.next != nil {
		nd.next.prev = nd.prev
	} else {
		l.tail = nd.prev
	}
	nd.prev, nd.next = nil, nil
	l.n--
}

func (l *lru) moveToFront(nd *node) {
	if l.head == nd {
		return
	}
	l.unlink(nd)
	l.pushFront(nd)
}

func (l *lru) popBack() *node {
	nd := l.tail
	l.unlink(nd)
	return nd
}
