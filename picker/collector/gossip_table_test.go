package collector

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func msg(sender, round uint64, kv ...uint64) *gossipMessage {
	m := &gossipMessage{sender: sender, round: round}
	for i := 0; i+1 < len(kv); i += 2 {
		m.entries = append(m.entries, gossipEntryOf{endpoint: kv[i], inFlight: uint32(kv[i+1])})
	}
	return m
}

// taken is apply's second result; why its first.
func taken(_ GossipRefusal, ok bool) bool       { return ok }
func why(r GossipRefusal, _ bool) GossipRefusal { return r }

func TestGossipTable(t *testing.T) {
	all := func(uint64) bool { return true }
	changed := func(tb *gossipTable) map[uint64]int64 {
		out := map[uint64]int64{}
		tb.takeChanged(func(ep uint64, s int64) { out[ep] = s })
		return out
	}
	t.Run("sums peers per endpoint", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 1, 10, 3, 11, 1), 0, 0, all)))
		require.True(t, taken(tb.apply(msg(3, 1, 10, 2), 0, 0, all)))
		require.Equal(t, int64(5), tb.sum(10))
		require.Equal(t, int64(1), tb.sum(11))
		require.Equal(t, map[uint64]int64{10: 5, 11: 1}, changed(tb))
		require.True(t, taken(tb.apply(msg(2, 2, 10, 1, 11, 0), 1, 0, all)), "a gauge, not a delta")
		require.Equal(t, int64(3), tb.sum(10))
		require.Equal(t, map[uint64]int64{10: 3, 11: 0}, changed(tb))
		require.Empty(t, changed(tb), "taken")
	})
	t.Run("our own datagrams are not counted", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		r, ok := tb.apply(msg(1, 1, 10, 3), 0, 0, all)
		require.False(t, ok)
		require.Equal(t, refusedOwn, r, "not counted as refused")
		require.Zero(t, tb.sum(10))
	})
	t.Run("an older round is stale", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 5, 10, 1), 0, 0, all)))
		require.Equal(t, RefusedRound, why(tb.apply(msg(2, 4, 10, 9), 0, 0, all)))
		require.Equal(t, int64(1), tb.sum(10))
		require.True(t, taken(tb.apply(msg(2, 5, 11, 2), 0, 0, all)), "the same round's next datagram")
		require.Equal(t, int64(2), tb.sum(11))
	})
	t.Run("endpoints we do not scrape are not kept", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 1, 10, 1, 99, 5), 0, 0, func(ep uint64) bool { return ep != 99 })))
		require.Zero(t, tb.sum(99))
		require.Len(t, tb.peers[2].counts, 1)
	})
	t.Run("new senders past the cap are refused", func(t *testing.T) {
		tb := newGossipTable(1, 2, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 1, 10, 1), 0, 0, all)))
		require.True(t, taken(tb.apply(msg(3, 1, 10, 1), 0, 0, all)))
		require.Equal(t, RefusedSenders, why(tb.apply(msg(4, 1, 10, 50), 0, 0, all)))
		require.Equal(t, int64(2), tb.sum(10))
		require.True(t, taken(tb.apply(msg(3, 2, 10, 2), 0, 0, all)), "known senders still are taken")
	})
	t.Run("quiet peers expire", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 1, 10, 3), 0, 0, all)))
		require.True(t, taken(tb.apply(msg(3, 1, 10, 2), 50, 0, all)))
		changed(tb)
		tb.expire(120)
		require.Equal(t, int64(2), tb.sum(10))
		require.Equal(t, 1, tb.peerCount())
		require.Equal(t, map[uint64]int64{10: 2}, changed(tb))
		tb.expire(151)
		require.Zero(t, tb.sum(10))
		require.Zero(t, tb.peerCount())
		require.True(t, taken(tb.apply(msg(2, 1, 10, 4), 200, 0, all)), "a restarted sender starts over")
		require.Equal(t, int64(4), tb.sum(10))
	})
	t.Run("with a window, only datagrams sent within it", func(t *testing.T) {
		const wall = 1_000_000 // Unix ms
		tb := newGossipTable(1, 8, 100, 1000)
		at := func(m *gossipMessage, sentAt int64) *gossipMessage { m.sentAt = sentAt; return m }
		require.Equal(t, RefusedTime, why(tb.apply(at(msg(2, 1, 10, 3), wall-1001), 0, wall, all)), "older than the window: played back")
		require.False(t, taken(tb.apply(at(msg(2, 1, 10, 3), wall+1001), 0, wall, all)), "from further ahead than the window")
		require.False(t, taken(tb.apply(at(msg(2, 1, 10, 3), 0), 0, wall, all)), "no time")
		require.Zero(t, tb.peerCount())
		require.True(t, taken(tb.apply(at(msg(2, 1, 10, 3), wall-1000), 0, wall, all)))
		require.True(t, taken(tb.apply(at(msg(3, 1, 10, 1), wall+1000), 0, wall, all)), "a clock ahead by the window")
		require.Equal(t, int64(4), tb.sum(10))
	})
	t.Run("with a window, a forgotten sender's datagrams cannot be played back", func(t *testing.T) {
		const wall, second = 1_000_000, int64(1e9)
		tb := newGossipTable(1, 8, 100, 1000)
		last := msg(2, 7, 10, 3)
		last.sentAt = wall
		require.True(t, taken(tb.apply(last, 0, wall, all)))
		tb.expire(101)
		require.Zero(t, tb.sum(10), "forgotten")
		require.Equal(t, RefusedRound, why(tb.apply(last, 200, wall+200, all)), "its last datagram again, still within the window")
		older := msg(2, 6, 10, 9)
		older.sentAt = wall
		require.False(t, taken(tb.apply(older, 200, wall+200, all)))
		require.Zero(t, tb.sum(10))
		resumed := msg(2, 8, 10, 2)
		resumed.sentAt = wall + 300
		require.True(t, taken(tb.apply(resumed, 300, wall+300, all)), "the sender itself, back after a pause")
		require.Equal(t, int64(2), tb.sum(10))

		tb.expire(500)
		require.Len(t, tb.gone, 1)
		tb.expire(500 + 2*second)
		require.Len(t, tb.gone, 1, "kept for two windows")
		tb.expire(501 + 2*second)
		require.Empty(t, tb.gone, "then its datagrams are past the window anyway")
	})
	t.Run("without a window, no forgotten senders are kept", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 1, 10, 3), 0, 0, all)))
		tb.expire(101)
		require.Empty(t, tb.gone)
	})
	t.Run("forget drops an endpoint", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100, 0)
		require.True(t, taken(tb.apply(msg(2, 1, 10, 3), 0, 0, all)))
		tb.forget(10)
		require.Zero(t, tb.sum(10))
		require.Empty(t, tb.peers[2].counts)
		require.Empty(t, changed(tb))
	})
}
