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

func TestGossipTable(t *testing.T) {
	all := func(uint64) bool { return true }
	changed := func(tb *gossipTable) map[uint64]int64 {
		out := map[uint64]int64{}
		tb.takeChanged(func(ep uint64, s int64) { out[ep] = s })
		return out
	}
	t.Run("sums peers per endpoint", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100)
		require.True(t, tb.apply(msg(2, 1, 10, 3, 11, 1), 0, all))
		require.True(t, tb.apply(msg(3, 1, 10, 2), 0, all))
		require.Equal(t, int64(5), tb.sum(10))
		require.Equal(t, int64(1), tb.sum(11))
		require.Equal(t, map[uint64]int64{10: 5, 11: 1}, changed(tb))
		require.True(t, tb.apply(msg(2, 2, 10, 1, 11, 0), 1, all), "a gauge, not a delta")
		require.Equal(t, int64(3), tb.sum(10))
		require.Equal(t, map[uint64]int64{10: 3, 11: 0}, changed(tb))
		require.Empty(t, changed(tb), "taken")
	})
	t.Run("our own datagrams are not counted", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100)
		require.False(t, tb.apply(msg(1, 1, 10, 3), 0, all))
		require.Zero(t, tb.sum(10))
	})
	t.Run("an older round is stale", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100)
		require.True(t, tb.apply(msg(2, 5, 10, 1), 0, all))
		require.False(t, tb.apply(msg(2, 4, 10, 9), 0, all))
		require.Equal(t, int64(1), tb.sum(10))
		require.True(t, tb.apply(msg(2, 5, 11, 2), 0, all), "the same round's next datagram")
		require.Equal(t, int64(2), tb.sum(11))
	})
	t.Run("endpoints we do not scrape are not kept", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100)
		require.True(t, tb.apply(msg(2, 1, 10, 1, 99, 5), 0, func(ep uint64) bool { return ep != 99 }))
		require.Zero(t, tb.sum(99))
		require.Len(t, tb.peers[2].counts, 1)
	})
	t.Run("new senders past the cap are refused", func(t *testing.T) {
		tb := newGossipTable(1, 2, 100)
		require.True(t, tb.apply(msg(2, 1, 10, 1), 0, all))
		require.True(t, tb.apply(msg(3, 1, 10, 1), 0, all))
		require.False(t, tb.apply(msg(4, 1, 10, 50), 0, all))
		require.Equal(t, int64(2), tb.sum(10))
		require.True(t, tb.apply(msg(3, 2, 10, 2), 0, all), "known senders still are taken")
	})
	t.Run("quiet peers expire", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100)
		require.True(t, tb.apply(msg(2, 1, 10, 3), 0, all))
		require.True(t, tb.apply(msg(3, 1, 10, 2), 50, all))
		changed(tb)
		tb.expire(120)
		require.Equal(t, int64(2), tb.sum(10))
		require.Equal(t, 1, tb.peerCount())
		require.Equal(t, map[uint64]int64{10: 2}, changed(tb))
		tb.expire(151)
		require.Zero(t, tb.sum(10))
		require.Zero(t, tb.peerCount())
		require.True(t, tb.apply(msg(2, 1, 10, 4), 200, all), "a restarted sender starts over")
		require.Equal(t, int64(4), tb.sum(10))
	})
	t.Run("forget drops an endpoint", func(t *testing.T) {
		tb := newGossipTable(1, 8, 100)
		require.True(t, tb.apply(msg(2, 1, 10, 3), 0, all))
		tb.forget(10)
		require.Zero(t, tb.sum(10))
		require.Empty(t, tb.peers[2].counts)
		require.Empty(t, changed(tb))
	})
}
