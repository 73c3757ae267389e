// Package freeport finds loopback ports nothing listens on, for tests that
// start servers of their own on 127.0.0.1 (imported by tests only).
package freeport

import (
	"net"
	"testing"
)

// UDP returns a UDP port on 127.0.0.1 that nothing listens on now (another
// process may take it before the test binds it: the tests retry nothing,
// as the window is microseconds).
func UDP(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("freeport: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
