package collector

import (
	"context"
	"net"
	"syscall"
)

// listenGossip binds the gossip socket with SO_REUSEPORT where the system
// has it: during an Envoy hot restart the old and the new process hold
// the same port for the drain, and the kernel splits the peers' datagrams
// between them (counts are gauges, so each still learns every peer within
// a few rounds).
func listenGossip(addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = reusePort(fd) })
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
