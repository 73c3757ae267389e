package collector

// GossipRefusal is why a gossip datagram was dropped: Envoy's
// endpoint_picker.gossip_refused counts them by it (tag reason), so an
// operator can tell a stranger from a peer whose clock is off.
type GossipRefusal uint8

const (
	RefusedSource    GossipRefusal = iota // not from a peer's address
	RefusedMalformed                      // not one of our datagrams: size, magic, entry count
	RefusedSignature                      // a bad or missing MAC, or signed where no key is set
	RefusedTime                           // sent outside replayWindow: a recording, or a clock that is off
	RefusedRound                          // older than its sender's last round: reordered, or played back
	RefusedSenders                        // a new sender past the bound (sendersFor)
	RefusedPanic                          // a bug while taking it (recovered)
	NumGossipRefusals

	// refusedOwn is our own datagram back (a peer list that names us):
	// neither taken nor counted as refused.
	refusedOwn = NumGossipRefusals
)

var gossipRefusalNames = [NumGossipRefusals]string{"source", "malformed", "signature", "time", "round", "senders", "panic"}

// String is the reason's tag value.
func (r GossipRefusal) String() string {
	if r < NumGossipRefusals {
		return gossipRefusalNames[r]
	}
	return "own"
}

// refusalOf is the reason decodeGossip's error gives.
func refusalOf(err error) GossipRefusal {
	switch err {
	case errGossipMAC, errGossipUnsigned, errGossipSigned:
		return RefusedSignature
	}
	return RefusedMalformed
}
