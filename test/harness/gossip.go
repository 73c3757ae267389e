package harness

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// GossipDatagram writes what another proxy of a fleet sends its peers
// (picker/collector/gossip_wire.go, written by hand so a test checks the
// format, not a copy of the code): its requests in flight per endpoint
// ("host:port"). Without a key it is IPG1; with one, IPG2 with sentAt
// (Unix ms) and an HMAC-SHA256 under key.
func GossipDatagram(key []byte, sender, round uint64, sentAt int64, inFlight map[string]uint32) []byte {
	b := []byte("IPG1")
	if key != nil {
		b = []byte("IPG2")
	}
	b = binary.LittleEndian.AppendUint64(b, sender)
	b = binary.LittleEndian.AppendUint64(b, round)
	if key != nil {
		b = binary.LittleEndian.AppendUint64(b, uint64(sentAt))
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(inFlight)))
	for addr, n := range inFlight {
		b = binary.LittleEndian.AppendUint64(b, xxhash.Sum64String(addr))
		b = binary.LittleEndian.AppendUint32(b, n)
	}
	if key == nil {
		return b
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return append(b, m.Sum(nil)[:16]...)
}
