package collector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// A gossip datagram tells the fleet's other proxies how many requests its
// sender has in flight to each endpoint. Little endian, in two versions:
//
//	IPG1 (no key)                   IPG2 (with a key)
//	0  "IPG1"                       0  "IPG2"
//	4  sender u64                   4  sender u64
//	12 round u64                    12 round u64
//	                                20 sentAt u64   the sender's clock, Unix ms
//	20 count u16                    28 count u16
//	22 entries                      30 entries
//	                                   mac          HMAC-SHA256 of all the above, first 16 bytes
//
// sender is random per process (a restarted proxy is a new sender); round
// is the sender's send round (a datagram of an older round is stale); an
// entry is (endpoint u64: xxhash of "host:port", in flight u32). Counts
// are gauges, not deltas: a lost datagram costs freshness until the next
// round, never a count that drifts.
//
// IPG2's sentAt, under the MAC, lets a receiver refuse a recorded
// datagram played back later (gossipTable.apply). An unkeyed fleet keeps
// IPG1, so it upgrades without a gap; a keyed one takes only IPG2, since
// an IPG1 datagram cannot show when it was sent.
const (
	gossipMagicV1     = "IPG1"
	gossipMagicV2     = "IPG2"
	gossipHeaderV1    = 22
	gossipHeaderV2    = 30
	gossipEntry       = 12
	gossipMAC         = 16
	gossipMaxEntries  = 96 // 1,198 bytes in IPG2: with UDP and IPv6 headers, under the 1,280-byte minimum MTU
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
	sentAt        int64 // Unix ms by the sender's clock; 0 in IPG1
	entries       []gossipEntryOf
}

var (
	errGossipShort    = errors.New("gossip: datagram shorter than its header")
	errGossipMagic    = errors.New("gossip: not a gossip datagram (magic)")
	errGossipSize     = errors.New("gossip: size does not match the entry count")
	errGossipMAC      = errors.New("gossip: bad or missing MAC")
	errGossipUnsigned = errors.New("gossip: an unsigned datagram (IPG1) where a key is set")
	errGossipSigned   = errors.New("gossip: a signed datagram (IPG2) where no key is set")
)

// appendGossip appends one datagram of entries (at most gossipMaxEntries)
// to dst: IPG2 with sentAt and a MAC when key is set, IPG1 otherwise.
func appendGossip(dst []byte, sender, round uint64, sentAt int64, entries []gossipEntryOf, key []byte) []byte {
	start := len(dst)
	if len(key) > 0 {
		dst = append(dst, gossipMagicV2...)
	} else {
		dst = append(dst, gossipMagicV1...)
	}
	dst = binary.LittleEndian.AppendUint64(dst, sender)
	dst = binary.LittleEndian.AppendUint64(dst, round)
	if len(key) > 0 {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(sentAt))
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(entries)))
	for _, e := range entries {
		dst = binary.LittleEndian.AppendUint64(dst, e.endpoint)
		dst = binary.LittleEndian.AppendUint32(dst, e.inFlight)
	}
	if len(key) > 0 {
		dst = append(dst, gossipSum(key, dst[start:])...)
	}
	return dst
}

// gossipSum is the truncated HMAC of b under key.
func gossipSum(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(b)
	var sum [sha256.Size]byte
	return m.Sum(sum[:0])[:gossipMAC]
}

// decodeGossip decodes b into msg, reusing msg.entries. With a key only
// IPG2 with the right MAC is taken, without one only IPG1. In-flight
// counts above gossipMaxInFlight are clamped: one peer cannot make an
// endpoint look arbitrarily loaded. Whether sentAt is recent is the
// receiver's to judge.
func decodeGossip(b []byte, key []byte, msg *gossipMessage) error {
	if len(b) < gossipHeaderV1 {
		return errGossipShort
	}
	header := gossipHeaderV1
	switch string(b[:4]) {
	case gossipMagicV1:
		if len(key) > 0 {
			return errGossipUnsigned
		}
	case gossipMagicV2:
		if len(key) == 0 {
			return errGossipSigned
		}
		header = gossipHeaderV2
		if len(b) < header {
			return errGossipShort
		}
	default:
		return errGossipMagic
	}
	n := int(binary.LittleEndian.Uint16(b[header-2:]))
	body := header + n*gossipEntry
	want := body
	if len(key) > 0 {
		want += gossipMAC
	}
	if n > gossipMaxEntries || len(b) != want {
		return errGossipSize
	}
	if len(key) > 0 && !hmac.Equal(gossipSum(key, b[:body]), b[body:]) {
		return errGossipMAC
	}
	msg.sender = binary.LittleEndian.Uint64(b[4:])
	msg.round = binary.LittleEndian.Uint64(b[12:])
	msg.sentAt = 0
	if header == gossipHeaderV2 {
		msg.sentAt = int64(binary.LittleEndian.Uint64(b[20:]))
	}
	msg.entries = msg.entries[:0]
	for i := range n {
		e := b[header+i*gossipEntry:]
		msg.entries = append(msg.entries, gossipEntryOf{
			endpoint: binary.LittleEndian.Uint64(e),
			inFlight: min(binary.LittleEndian.Uint32(e[8:]), gossipMaxInFlight),
		})
	}
	return nil
}
