package prefix

import (
	"sync"
	"sync/atomic"
	"time"
)

// Index remembers, per endpoint, the prefix block hashes of the requests
// sent to it, in an LRU per endpoint whose capacity models the server's KV
// cache: what the server must have evicted, the index evicts too. Lookups (every pick)
// take a shard read lock. Updates are queued by the pick and applied in
// batches about a millisecond later by a timer goroutine, so a pick neither
// waits for the table writes nor pays for waking a writer. See table.go
// and the README for the layout.
//
// Hashes of one request are inserted deepest first, so a request's first
// blocks are always the most recently used: what an endpoint holds of a
// chain is then always a leading run of it, and matching can binary-search
// the chain instead of probing every block.
type Index struct {
	capacity int32 // per endpoint, unless a record says otherwise
	shards   [numShards]shard
	dropped  atomic.Uint64
	entries  atomic.Int64

	mu        sync.Mutex // guards the queue and free records
	queue     []*record
	free      []*record // applied records, reused: no garbage per pick
	scheduled bool
	closed    bool
	timer     *time.Timer

	applyMu sync.Mutex // held while applying; guards what follows
	batch   []*record
	lists   []lru
	delta   int64 // change of Entries not yet published
	sink    int   // see warm
}

const (
	numShards = 32
	// flushDelay batches updates: one timer firing per millisecond at most.
	flushDelay = time.Millisecond
	// maxQueued bounds the updates waiting for a flush (a million picks a
	// second at one flush per millisecond); more are dropped.
	maxQueued = 1024
	// entryHolders is how many holders an entry keeps inline; more chain
	// to further entries.
	entryHolders = 6
	none         = -1
)

// The structures below hold no pointers: links are int32 indices into
// slabs, so updating them costs no GC write barriers and the collector does
// not scan them.
//
// Only the applying goroutine (under applyMu) modifies a shard, and it does
// so under the shard's write lock; it reads the shard without locking, since
// nothing else writes it. Picks read it under the shard's read lock.
type shard struct {
	mu sync.RWMutex
	t  table
	_  [64]byte // keep shards' locks on separate cache lines
}

// entry is a chained overflow of a table slot's holders.
type entry struct {
	holders [entryHolders]holder
	n       int32
	next    int32 // next entry, or none
}

type holder struct {
	id   int32
	slot int32 // in the endpoint's lru
}

// slot is one (hash, endpoint) in that endpoint's LRU list.
type slot struct {
	hash       uint64
	prev, next int32
}

type lru struct {
	slots      []slot
	head, tail int32 // head is the most recently used
	free       int32 // free slots, chained by next
	n          int32
	capacity   int32 // slots kept at most: the latest record's
}

type record struct {
	id       int32
	capacity int32
	forget   bool
	hashes   []uint64
}

// NewIndex returns an index keeping up to capacity hashes per endpoint
// unless Record says otherwise. Close it to stop its timer.
func NewIndex(capacity int) *Index {
	x := &Index{capacity: int32(max(1, min(capacity, 1<<30)))}
	for i := range x.shards {
		x.shards[i].t.free = none
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
	// Wait for a flush in progress: the lock is the barrier, there is
	// nothing to do under it.
	x.applyMu.Lock()
	//lint:ignore SA2001 a barrier, not a critical section
	x.applyMu.Unlock()
}

// Record queues "the blocks hashes were sent to endpoint id, which holds
// capacity blocks at most" (<= 0: the index's default). The endpoint's LRU
// takes the capacity of its latest record: a server that restarted with a
// smaller cache is trimmed on its next request. When too many updates wait,
// the record is dropped and counted: losing some affinity under overload is
// better than slowing picks.
func (x *Index) Record(id, capacity int32, hashes []uint64) {
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
	if capacity <= 0 {
		capacity = x.capacity
	}
	r.id, r.capacity, r.forget = id, capacity, false
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
	if x.delta != 0 {
		x.entries.Add(x.delta)
		x.delta = 0
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
	if i := sh.t.find(h); i >= 0 {
		return sh.t.each(i, fn)
	}
	return false
}

func (x *Index) apply(r *record) {
	if r.forget {
		x.forget(r.id)
		return
	}
	l := x.list(r.id)
	l.capacity = r.capacity
	x.warm(l, r.id, r.hashes)
	for i := len(r.hashes) - 1; i >= 0; i-- {
		x.touch(l, r.id, r.hashes[i])
	}
	for l.n > l.capacity { // the capacity shrank
		x.remove(r.id, l.popBack())
	}
}

// warm looks up, before touching any, the table slots that applying hashes
// to l will read: each hash's, and those of the hashes it will evict. Most
// are cache misses; here they are independent loads the CPU overlaps, where
// in touch each waits behind the previous one's lock (whose atomic
// instructions order memory accesses).
func (x *Index) warm(l *lru, id int32, hashes []uint64) {
	acc, added := 0, int32(0)
	for _, h := range hashes {
		t := &x.shards[h%numShards].t
		i := t.find(h)
		if i < 0 {
			added++
		} else if _, ok := t.slotOf(i, id); !ok {
			added++
		}
		acc += i
	}
	if evict := l.n + added - l.capacity; evict > 0 {
		s := l.tail
		for k := int32(0); k < evict && s != none; k++ {
			sl := &l.slots[s]
			acc += x.shards[sl.hash%numShards].t.find(sl.hash)
			s = sl.prev
		}
	}
	x.sink = acc
}

func (x *Index) list(id int32) *lru {
	for int(id) >= len(x.lists) {
		x.lists = append(x.lists, lru{head: none, tail: none, free: none})
	}
	return &x.lists[id]
}

// touch makes h the most recently used hash of endpoint id.
func (x *Index) touch(l *lru, id int32, h uint64) {
	sh := &x.shards[h%numShards]
	// Only this goroutine writes sh: reading it needs no lock.
	i := sh.t.find(h)
	if i >= 0 {
		if s, ok := sh.t.slotOf(i, id); ok {
			l.moveToFront(s)
			return
		}
	}
	s := l.pushFront(h)
	sh.mu.Lock()
	if i < 0 {
		i = sh.t.insert(h)
		x.delta++
	}
	sh.t.addHolder(i, holder{id: id, slot: s})
	sh.mu.Unlock()

	if l.n > l.capacity {
		x.remove(id, l.popBack())
	}
}

// remove drops (h, endpoint id) from the table; its slot is already freed.
func (x *Index) remove(id int32, h uint64) {
	sh := &x.shards[h%numShards]
	sh.mu.Lock()
	if sh.t.remove(h, id) {
		x.delta--
	}
	sh.mu.Unlock()
}

func (x *Index) forget(id int32) {
	if int(id) >= len(x.lists) {
		return
	}
	l := &x.lists[id]
	for l.n > 0 {
		x.remove(id, l.popBack())
	}
}

// pushFront adds h as the most recently used slot and returns it.
func (l *lru) pushFront(h uint64) int32 {
	s := l.free
	if s != none {
		l.free = l.slots[s].next
	} else {
		l.slots = append(l.slots, slot{})
		s = int32(len(l.slots) - 1)
	}
	l.slots[s] = slot{hash: h, prev: none, next: l.head}
	if l.head != none {
		l.slots[l.head].prev = s
	} else {
		l.tail = s
	}
	l.head = s
	l.n++
	return s
}

func (l *lru) unlink(s int32) {
	sl := &l.slots[s]
	if sl.prev != none {
		l.slots[sl.prev].next = sl.next
	} else {
		l.head = sl.next
	}
	if sl.next != none {
		l.slots[sl.next].prev = sl.prev
	} else {
		l.tail = sl.prev
	}
}

func (l *lru) moveToFront(s int32) {
	if l.head == s {
		return
	}
	l.unlink(s)
	sl := &l.slots[s]
	sl.prev, sl.next = none, l.head
	l.slots[l.head].prev = s
	l.head = s
}

// popBack frees the least recently used slot and returns its hash.
func (l *lru) popBack() uint64 {
	s := l.tail
	l.unlink(s)
	l.n--
	h := l.slots[s].hash
	l.slots[s] = slot{next: l.free}
	l.free = s
	return h
}
