package prefix

// table maps a hash to the endpoints holding it: open addressing with linear
// probing in one flat slice, at most half full, with no pointers. A slot is
// 32 bytes (half a cache line): the hash and up to three holders inline, so
// a lookup or an update usually costs one cache miss, where a Go map costs
// the group's control word, the key and then the value it points to. More
// holders than fit overflow into chained entries.
//
// The index's single writer mutates a table under its shard's write lock
// and reads it without locking; picks read it under the read lock.
type table struct {
	slots []tslot // a power of two long
	shift uint8   // 64 - log2(len(slots))
	n     int     // slots in use
	ovf   []entry // overflow holders
	free  int32   // free overflow entries, chained by next
}

type tslot struct {
	key uint64
	// holders[0].id == none: the slot is empty. An id of overflowID means
	// the rest of the holders are in ovf, from entry holder.slot on.
	holders [inlineHolders]holder
}

const (
	inlineHolders = 3
	overflowID    = -2
	minTableBits  = 8
)

var emptySlot = tslot{holders: [inlineHolders]holder{{id: none}, {id: none}, {id: none}}}

func (t *table) init(bits uint8) {
	t.slots = make([]tslot, 1<<bits)
	for i := range t.slots {
		t.slots[i] = emptySlot
	}
	t.shift = 64 - bits
	t.n = 0
}

// home is h's preferred slot: the hashes are usually xxhash output, but not
// always (tests, benchmarks), so they are mixed first.
func (t *table) home(h uint64) int {
	return int((h * 0x9e3779b97f4a7c15) >> t.shift)
}

// find returns the index of h's slot, or -1.
func (t *table) find(h uint64) int {
	if t.slots == nil {
		return -1
	}
	mask := len(t.slots) - 1
	for i := t.home(h); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.holders[0].id == none {
			return -1
		}
		if s.key == h {
			return i
		}
	}
}

// each calls fn with the id of each holder of slot i until fn returns false,
// and reports whether it did.
func (t *table) each(i int, fn func(id int32) bool) bool {
	s := &t.slots[i]
	for _, hd := range s.holders {
		switch hd.id {
		case none:
			return false
		case overflowID:
			for e := hd.slot; e != none; e = t.ovf[e].next {
				en := &t.ovf[e]
				for _, o := range en.holders[:en.n] {
					if !fn(o.id) {
						return true
					}
				}
			}
			return false
		}
		if !fn(hd.id) {
			return true
		}
	}
	return false
}

// slotOf returns id's LRU slot in table slot i.
func (t *table) slotOf(i int, id int32) (int32, bool) {
	s := &t.slots[i]
	for _, hd := range s.holders {
		switch hd.id {
		case id:
			return hd.slot, true
		case none:
			return 0, false
		case overflowID:
			for e := hd.slot; e != none; e = t.ovf[e].next {
				en := &t.ovf[e]
				for _, o := range en.holders[:en.n] {
					if o.id == id {
						return o.slot, true
					}
				}
			}
			return 0, false
		}
	}
	return 0, false
}

// insert adds h, which is absent, with no holders yet, and returns its slot;
// add a holder before anyone looks.
func (t *table) insert(h uint64) int {
	if t.slots == nil {
		t.init(minTableBits)
	}
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := len(t.slots) - 1
	i := t.home(h)
	for t.slots[i].holders[0].id != none {
		i = (i + 1) & mask
	}
	t.slots[i].key = h
	t.n++
	return i
}

func (t *table) grow() {
	old := t.slots
	t.init(64 - t.shift + 1)
	mask := len(t.slots) - 1
	for k := range old {
		if old[k].holders[0].id == none {
			continue
		}
		i := t.home(old[k].key)
		for t.slots[i].holders[0].id != none {
			i = (i + 1) & mask
		}
		t.slots[i] = old[k]
		t.n++
	}
}

// addHolder adds hd to slot i.
func (t *table) addHolder(i int, hd holder) {
	s := &t.slots[i]
	for k := range s.holders {
		switch s.holders[k].id {
		case none:
			s.holders[k] = hd
			return
		case overflowID:
			t.chainAdd(s.holders[k].slot, hd)
			return
		}
	}
	// Inline holders full: the last one moves to a new overflow entry.
	e := t.newEntry()
	en := &t.ovf[e]
	en.holders[0], en.holders[1], en.n = s.holders[inlineHolders-1], hd, 2
	s.holders[inlineHolders-1] = holder{id: overflowID, slot: e}
}

func (t *table) chainAdd(e int32, hd holder) {
	for {
		en := &t.ovf[e]
		if en.n < entryHolders {
			en.holders[en.n] = hd
			en.n++
			return
		}
		if en.next == none {
			n := t.newEntry() // may move t.ovf
			t.ovf[e].next = n
			e = n
			continue
		}
		e = en.next
	}
}

func (t *table) newEntry() int32 {
	if e := t.free; e != none {
		t.free = t.ovf[e].next
		t.ovf[e] = entry{next: none}
		return e
	}
	t.ovf = append(t.ovf, entry{next: none})
	return int32(len(t.ovf) - 1)
}

// remove drops holder id of h and reports whether h is now held by no one
// (and so removed).
func (t *table) remove(h uint64, id int32) bool {
	i := t.find(h)
	if i < 0 {
		return false
	}
	s := &t.slots[i]
	var at *holder
	ovf := int32(none)
	last := -1 // last inline holder
	for k := range s.holders {
		hk := &s.holders[k]
		if hk.id == none {
			break
		}
		if hk.id == overflowID {
			ovf = hk.slot
			break
		}
		if hk.id == id {
			at = hk
		}
		last = k
	}
	if ovf == none {
		if at == nil {
			return false
		}
		*at = s.holders[last]
		s.holders[last] = holder{id: none}
		if s.holders[0].id == none {
			t.deleteAt(i)
			return true
		}
		return false
	}
	// Fill id's place with the chain's last holder.
	lastE, prevE := ovf, int32(none)
	for e := ovf; e != none; e = t.ovf[e].next {
		en := &t.ovf[e]
		if at == nil {
			for k := range en.holders[:en.n] {
				if en.holders[k].id == id {
					at = &en.holders[k]
					break
				}
			}
		}
		if en.next != none {
			prevE = e
		}
		lastE = e
	}
	if at == nil {
		return false
	}
	le := &t.ovf[lastE]
	le.n--
	*at = le.holders[le.n]
	le.holders[le.n] = holder{}
	if le.n == 0 {
		if prevE == none {
			s.holders[inlineHolders-1] = holder{id: none}
		} else {
			t.ovf[prevE].next = none
		}
		le.next = t.free
		t.free = lastE
	}
	return false
}

// deleteAt empties slot i, shifting back the slots after it that would
// otherwise become unreachable (no tombstones).
func (t *table) deleteAt(i int) {
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.slots[j].holders[0].id != none; j = (j + 1) & mask {
		k := t.home(t.slots[j].key)
		// Slot j stays when its home is cyclically in (i, j].
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = emptySlot
	t.n--
}
