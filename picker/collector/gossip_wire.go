package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// A gossip datagram tells the fleet's other proxies how many requests its
// sender has in flight to each endpoint. Little endian:
//
//	0  "IPG1"       magic and version
//	4  sender u64   random per process: a restarted proxy is a new sender
//	12 round u64    the sender's send round; a datagram of an older round is stale
//	20 count u16    entries that follow
//	22 entries      count × (endpoint u64: xxhash of "host:port", in flight u32)
//	   mac          with a key: HMAC-SHA256 of all the above, first 16 bytes
//
// Counts are gauges, not deltas: a lost datagram costs freshness until the
// next round, never a count that drifts.
const (
	gossipMagic       = "IPG1"
	gossipHeader      = 22
	gossipEntry       = 12
	gossipMAC         = 16
	gossipMaxEntries  = 96 // 1,190 bytes with a MAC: with UDP and IPv6 headers, under the 1,280-byte minimum MTU
	gossipMaxInFlight = 1 << 16
)

// gossipEntryOf is one endpoint's count in a datagram.
type gossipEntryOf struct {
	endpoint uint64
	inFlight uint32
}

// gossipMessage is a decoded datagram.
type gossipMessage struct {
	sender, round uint64
	entries       []gossipEntryOf
}

var (
	errGossipShort = errors.New("gossip: datagram shorter than its header")
	errGossipMagic = errors.New("gossip: not a gossip datagram (magic)")
	errGossipSize  = errors.New("gossip: size does not match the entry count")
	errGossipMAC   = errors.New("gossip: bad or missing MAC")
)

// appendGossip appends one datagram of entries (at most gossipMaxEntries)
// to dst, with a MAC when key is set.
func appendGossip(dst []byte, sender, round uint64, entries []gossipEntryOf, key []byte) []byte {
	start := len(dst)
	dst = append(dst, gossipMagic...)
	dst = binary.LittleEndian.AppendUint64(dst, sender)
	dst = binary.LittleEndian.AppendUint64(dst, round)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(entries)))
	for _, e := range entries {
		dst = binary.LittleEndian.AppendUint64(dst, e.endpoint)
		dst = binary.LittleEndian.AppendUint32(dst, e.inFlight)
	}
	if len(key) > 0 {
		m := hmac.New(sha256.New, key)
		m.Write(dst[start:])
		var sum [sha256.Size]byte
		dst = append(dst, m.Sum(sum[:0])[:gossipMAC]...)
	}
	return dst
}

// decodeGossip decodes b into msg, reusing msg.entries. With a key, a
// datagram without the right MAC is refused. In-flight counts above
// gossipMaxInFlight are clamped: one peer cannot make an endpoint look
// arbitrarily loaded.
func decodeGossip(b []byte, key []byte, msg *gossipMessage) error {
	if len(b) < gossipHeader {
		return errGossipShort
	}
	if string(b[:4]) != gossipMagic {
		return errGossipMagic
	}
	n := int(binary.LittleEndian.Uint16(b[20:]))
	body := gossipHeader + n*gossipEntry
	want := body
	if len(key) > 0 {
		want += gossipMAC
	}
	if n > gossipMaxEntries || len(b) != want {
		return errGossipSize
	}
	if len(key) > 0 {
		m := hmac.New(sha256.New, key)
		m.Write(b[:body])
		var sum [sha256.Size]byte
		if !hmac.Equal(m.Sum(sum[:0])[:gossipMAC], b[body:]) {
			return errGossipMAC
		}
	}
	msg.sender = binary.LittleEndian.Uint64(b[4:])
	msg.round = binary.LittleEndian.Uint64(b[12:])
	msg.entries = msg.entries[:0]
	for i := range n {
		e := b[gossipHeader+i*gossipEntry:]
		msg.entries = append(msg.entries, gossipEntryOf{
			endpoint: binary.LittleEndian.Uint64(e),
			inFlight: min(binary.LittleEndian.Uint32(e[8:]), gossipMaxInFlight),
		})
	}
	return nil
}
