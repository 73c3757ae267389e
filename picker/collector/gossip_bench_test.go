package collector

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkGossipRound is one sender round for a pool of 100 endpoints:
// the counts read under the collector's lock and encoded (two datagrams),
// without the send.
func BenchmarkGossipRound(b *testing.B) {
	c := NewManual()
	spec := Spec{Path: "/metrics", Interval: time.Second, Concurrency: 1, UnhealthyAfter: 1, MaxBytes: 1 << 20}
	for i := range 100 {
		c.Acquire(fmt.Sprintf("10.0.0.%d:8000", i), spec).Start()
	}
	var entries []gossipEntryOf
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		entries = c.inFlightByEndpoint(entries[:0])
		for start := 0; start < len(entries); start += gossipMaxEntries {
			buf = appendGossip(buf[:0], 1, 1, 0, entries[start:min(start+gossipMaxEntries, len(entries))], nil)
		}
	}
}

// BenchmarkGossipReceive is one received datagram of 96 endpoints:
// decoded and folded into the table, the changed sums written to targets.
func BenchmarkGossipReceive(b *testing.B) {
	c := NewManual()
	spec := Spec{Path: "/metrics", Interval: time.Second, Concurrency: 1, UnhealthyAfter: 1, MaxBytes: 1 << 20}
	entries := make([]gossipEntryOf, gossipMaxEntries)
	for i := range entries {
		addr := fmt.Sprintf("10.0.0.%d:8000", i)
		c.Acquire(addr, spec)
		entries[i] = gossipEntryOf{endpoint: endpointHash(addr)}
	}
	n := &gossipNode{c: c, id: 1}
	table := newGossipTable(1, 8, int64(time.Second), 0)
	var msg gossipMessage
	datagrams := make([][]byte, 2)
	for i := range datagrams { // counts that change every datagram, as under load
		for j := range entries {
			entries[j].inFlight = uint32(i + j%3)
		}
		datagrams[i] = appendGossip(nil, 2, uint64(i+1), 0, entries, nil)
	}
	known := func(ep uint64) bool { return len(c.byHash[ep]) > 0 }
	b.ReportAllocs()
	round := uint64(0)
	for b.Loop() {
		round++
		if err := decodeGossip(datagrams[round%2], nil, &msg); err != nil {
			b.Fatal(err)
		}
		msg.round = round
		c.mu.Lock()
		table.apply(&msg, 0, 0, known)
		c.mu.Unlock()
		n.publish(table)
	}
}
