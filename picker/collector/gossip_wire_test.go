package collector

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGossipWireRoundTrip(t *testing.T) {
	entries := []gossipEntryOf{{endpoint: 1, inFlight: 0}, {endpoint: 0xdeadbeefcafe, inFlight: 7}, {endpoint: 3, inFlight: gossipMaxInFlight}}
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"no key", nil}, {"key", []byte("0123456789abcdef")}} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendGossip(nil, 42, 9, 1_700_000_000_123, entries, tc.key)
			want, magic, sentAt := gossipHeaderV1+len(entries)*gossipEntry, gossipMagicV1, int64(0)
			if tc.key != nil {
				want, magic, sentAt = gossipHeaderV2+len(entries)*gossipEntry+gossipMAC, gossipMagicV2, 1_700_000_000_123
			}
			require.Len(t, b, want)
			require.Equal(t, magic, string(b[:4]))
			var m gossipMessage
			require.NoError(t, decodeGossip(b, tc.key, &m))
			require.Equal(t, uint64(42), m.sender)
			require.Equal(t, uint64(9), m.round)
			require.Equal(t, sentAt, m.sentAt, "only a signed datagram carries its time")
			require.Equal(t, entries, m.entries)
		})
	}
	t.Run("the largest datagram fits a 1,280-byte MTU", func(t *testing.T) {
		b := appendGossip(nil, 1, 1, 1, make([]gossipEntryOf, gossipMaxEntries), []byte("0123456789abcdef"))
		require.LessOrEqual(t, len(b)+8+40, 1280, "UDP and IPv6 headers included")
	})
}

func TestGossipWireRefuses(t *testing.T) {
	key := []byte("0123456789abcdef")
	good := appendGossip(nil, 1, 1, 0, []gossipEntryOf{{endpoint: 5, inFlight: 2}}, nil)
	signed := appendGossip(nil, 1, 1, 1_700_000_000_000, []gossipEntryOf{{endpoint: 5, inFlight: 2}}, key)
	tampered := append([]byte(nil), signed...)
	tampered[gossipHeaderV2+8]++ // the count, under the MAC
	retimed := append([]byte(nil), signed...)
	retimed[20]++ // sentAt, under the MAC: a recording made to look recent
	// A signed datagram's header and MAC around an IPG1 body: the MAC
	// cannot be moved onto an unsigned datagram.
	relabelled := append([]byte(gossipMagicV1), signed[4:]...)
	tooMany := binary.LittleEndian.AppendUint16(append([]byte(nil), good[:20]...), gossipMaxEntries+1)
	tooMany = append(tooMany, make([]byte, (gossipMaxEntries+1)*gossipEntry)...)
	for _, tc := range []struct {
		name string
		b    []byte
		key  []byte
		err  error
	}{
		{"empty", nil, nil, errGossipShort},
		{"short header", good[:gossipHeaderV1-1], nil, errGossipShort},
		{"short IPG2 header", signed[:gossipHeaderV2-1], key, errGossipShort},
		{"other magic", append([]byte("IPG3"), good[4:]...), nil, errGossipMagic},
		{"truncated entry", good[:len(good)-1], nil, errGossipSize},
		{"trailing bytes", append(append([]byte(nil), good...), 0), nil, errGossipSize},
		{"more entries than a datagram holds", tooMany, nil, errGossipSize},
		{"unsigned where a key is set", good, key, errGossipUnsigned},
		{"signed as IPG1 where a key is set", relabelled, key, errGossipUnsigned},
		{"signed under another key", signed, []byte("fedcba9876543210"), errGossipMAC},
		{"tampered under the MAC", tampered, key, errGossipMAC},
		{"its time changed under the MAC", retimed, key, errGossipMAC},
		{"signed where no key is set", signed, nil, errGossipSigned},
		{"signed, its MAC cut off", signed[:len(signed)-gossipMAC], key, errGossipSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m gossipMessage
			require.ErrorIs(t, decodeGossip(tc.b, tc.key, &m), tc.err)
		})
	}
	t.Run("a count past the cap is clamped", func(t *testing.T) {
		b := appendGossip(nil, 1, 1, 0, []gossipEntryOf{{endpoint: 5, inFlight: 1 << 31}}, nil)
		var m gossipMessage
		require.NoError(t, decodeGossip(b, nil, &m))
		require.Equal(t, uint32(gossipMaxInFlight), m.entries[0].inFlight)
	})
}

func FuzzDecodeGossip(f *testing.F) {
	f.Add(appendGossip(nil, 1, 2, 0, []gossipEntryOf{{endpoint: 3, inFlight: 4}}, nil), false)
	f.Add(appendGossip(nil, 1, 2, 1_700_000_000_000, []gossipEntryOf{{endpoint: 3, inFlight: 4}}, []byte("0123456789abcdef")), true)
	f.Fuzz(func(t *testing.T, b []byte, keyed bool) {
		var key []byte
		if keyed {
			key = []byte("0123456789abcdef")
		}
		var m gossipMessage
		if decodeGossip(b, key, &m) != nil {
			return
		}
		require.LessOrEqual(t, len(m.entries), gossipMaxEntries)
		for _, e := range m.entries {
			require.LessOrEqual(t, e.inFlight, uint32(gossipMaxInFlight))
		}
		// What decodes re-encodes to a datagram that decodes the same.
		var again gossipMessage
		require.NoError(t, decodeGossip(appendGossip(nil, m.sender, m.round, m.sentAt, m.entries, key), key, &again))
		require.Equal(t, m.sender, again.sender)
		require.Equal(t, m.sentAt, again.sentAt)
		require.Equal(t, m.entries, again.entries)
	})
}

// Each refusal has its own tag value, and decodeGossip's errors map to
// the reason an operator would look for.
func TestGossipRefusalReasons(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumGossipRefusals {
		name := r.String()
		require.NotEmpty(t, name)
		require.False(t, seen[name], "%s twice", name)
		seen[name] = true
	}
	for err, want := range map[error]GossipRefusal{
		errGossipShort: RefusedMalformed, errGossipMagic: RefusedMalformed, errGossipSize: RefusedMalformed,
		errGossipMAC: RefusedSignature, errGossipUnsigned: RefusedSignature, errGossipSigned: RefusedSignature,
	} {
		require.Equal(t, want, refusalOf(err), "%v", err)
	}
}
