package prefix

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// modelLRU is the reference: per endpoint, its hashes most recent first.
type modelLRU struct {
	capacity int
	lists    map[int32][]uint64
}

func (m *modelLRU) touch(id int32, h uint64) {
	l := m.lists[id]
	if i := slices.Index(l, h); i >= 0 {
		l = slices.Delete(l, i, i+1)
	}
	l = slices.Insert(l, 0, h)
	if len(l) > m.capacity {
		l = l[:m.capacity]
	}
	m.lists[id] = l
}

func (m *modelLRU) holders(h uint64) []int32 {
	var ids []int32
	for id, l := range m.lists {
		if slices.Contains(l, h) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (m *modelLRU) entries() int64 {
	seen := map[uint64]bool{}
	for _, l := range m.lists {
		for _, h := range l {
			seen[h] = true
		}
	}
	return int64(len(seen))
}

// TestIndexMatchesModel applies random records and forgets, with many
// endpoints sharing hashes (holders overflowing a table slot), duplicates in
// a record and records longer than the capacity, and checks every hash's
// holders against a plain LRU.
func TestIndexMatchesModel(t *testing.T) {
	for _, capacity := range []int{1, 3, 17, 200} {
		rng := rand.New(rand.NewPCG(uint64(capacity), 7))
		x := NewIndex(capacity)
		m := &modelLRU{capacity: capacity, lists: map[int32][]uint64{}}
		universe := uint64(3 * capacity)
		for step := range 2000 {
			id := int32(rng.IntN(24))
			if rng.IntN(50) == 0 {
				x.Forget(id)
				delete(m.lists, id)
			} else {
				n := 1 + rng.IntN(min(2*capacity, 40))
				hashes := make([]uint64, n)
				for i := range hashes {
					hashes[i] = rng.Uint64N(universe) * 0x9e3779b97f4a7c15 >> rng.IntN(2) // also small and structured keys
					if rng.IntN(4) == 0 {
						hashes[i] = rng.Uint64N(universe) << 5 // all in one shard
					}
				}
				x.Record(id, 0, hashes)
				for i := n - 1; i >= 0; i-- {
					m.touch(id, hashes[i])
				}
			}
			if rng.IntN(5) > 0 {
				continue
			}
			x.Flush()
			if step%10 != 0 {
				continue
			}
			require.Equal(t, m.entries(), x.Entries(), "capacity %d step %d", capacity, step)
			for _, l := range m.lists {
				for _, h := range l {
					var got []int32
					x.Holders(h, func(id int32) bool { got = append(got, id); return true })
					slices.Sort(got)
					require.Equal(t, m.holders(h), got, "capacity %d step %d hash %x", capacity, step, h)
				}
			}
			require.False(t, x.Holders(12345678901, func(int32) bool { return false }))
		}
		x.Close()
	}
}

// TestIndexHoldersDuringFlush runs lookups while updates are applied: run
// with -race. Every lookup must also read a consistent holder list: only
// IDs that were recorded, each at most once.
func TestIndexHoldersDuringFlush(t *testing.T) {
	x := NewIndex(100)
	defer x.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Value // the first inconsistent lookup, as a string
	var seenAny atomic.Bool
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seen [12]bool
			for i := uint64(r); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				clear(seen[:])
				h := i % 500
				x.Holders(h, func(id int32) bool {
					switch {
					case id < 0 || id >= int32(len(seen)):
						bad.CompareAndSwap(nil, fmt.Sprintf("hash %d: holder %d was never recorded", h, id))
					case seen[id]:
						bad.CompareAndSwap(nil, fmt.Sprintf("hash %d: holder %d listed twice", h, id))
					default:
						seen[id] = true
						seenAny.Store(true)
					}
					return true
				})
			}
		}()
	}
	hashes := make([]uint64, 32)
	for i := range 2000 {
		for j := range hashes {
			hashes[j] = uint64((i*7 + j*13) % 500)
		}
		x.Record(int32(i%12), 0, hashes)
		if i%300 == 0 {
			x.Forget(int32(i % 12))
		}
		if i%10 == 0 {
			x.Flush()
		}
	}
	// The readers may start late on a busy machine: the index is full now.
	require.Eventually(t, seenAny.Load, 10*time.Second, time.Millisecond, "the lookups saw no holder at all")
	close(stop)
	wg.Wait()
	require.Nil(t, bad.Load())
}
