package main

import (
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
)

// headerSnapshot is a copy of every entry of a header map, read at once
// (abi.Headers: two callbacks in one call from Go, into a slice the
// snapshot keeps, no allocation), however many headers a hook needs, where
// each value read apart is one callback.
// The copy lives in the filter's own buffer, reused by its next stream, so
// its values outlive the hook that read them (Envoy's views die when the
// hook returns or a setter runs) without a copy each. The strings it
// returns alias that buffer: valid until the next read or the filter's next
// stream, never to be kept beyond either.
type headerSnapshot struct {
	buf   []byte
	kv    []headerEntry
	views [][2]shared.UnsafeEnvoyBuffer // abi.Headers's, reused; cleared after each read
}

// headerEntry is one header: its name and value as offsets into buf.
type headerEntry struct{ name, value, end uint32 }

// read replaces the snapshot with h's entries, in Envoy's order.
func (s *headerSnapshot) read(h shared.HeaderMap) {
	s.fill(abi.Headers(h, s.views[:0]))
}

// readIn adds the read of h's entries to b, for fill once b ran: the read
// goes with the hook's other reads, in one call from Go.
func (s *headerSnapshot) readIn(b *abi.Batch, h shared.HeaderMap) abi.Op {
	return b.Headers(h, s.views[:0])
}

// fill replaces the snapshot with views (read into s.views's room: kept
// for the next read).
func (s *headerSnapshot) fill(views [][2]shared.UnsafeEnvoyBuffer) {
	s.buf, s.kv = s.buf[:0], s.kv[:0]
	s.views = views
	defer clear(s.views) // no view into Envoy's memory outlives the read
	for _, e := range s.views {
		n := uint32(len(s.buf))
		s.buf = append(s.buf, e[0].ToUnsafeBytes()...)
		v := uint32(len(s.buf))
		s.buf = append(s.buf, e[1].ToUnsafeBytes()...)
		s.kv = append(s.kv, headerEntry{name: n, value: v, end: uint32(len(s.buf))})
	}
}

func (s *headerSnapshot) str(from, to uint32) string {
	if from == to {
		return ""
	}
	return unsafe.String(&s.buf[from], int(to-from))
}

func (s *headerSnapshot) nameOf(e headerEntry) string  { return s.str(e.name, e.value) }
func (s *headerSnapshot) valueOf(e headerEntry) string { return s.str(e.value, e.end) }

// get is the first value of name, as GetOne reads it ("" when there is
// none, or when it is empty).
func (s *headerSnapshot) get(name string) string {
	for _, e := range s.kv {
		if s.nameOf(e) == name {
			return s.valueOf(e)
		}
	}
	return ""
}

// count is how many entries name has (empty values count).
func (s *headerSnapshot) count(name string) int {
	n := 0
	for _, e := range s.kv {
		if s.nameOf(e) == name {
			n++
		}
	}
	return n
}

// only reports whether name has exactly one entry, whose value is value:
// setting it to value again would change nothing.
func (s *headerSnapshot) only(name, value string) bool {
	found := false
	for _, e := range s.kv {
		if s.nameOf(e) == name {
			if found || s.valueOf(e) != value {
				return false
			}
			found = true
		}
	}
	return found
}

// appendList appends the values of name to dst as one list, ", " between
// them: several headers of a list-valued field are one list (RFC 9110).
func (s *headerSnapshot) appendList(dst []byte, name string) []byte {
	first := true
	for _, e := range s.kv {
		if s.nameOf(e) != name {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst = append(dst, s.buf[e.value:e.end]...)
	}
	return dst
}

// keepSnapshot is the snapshot a pooled filter keeps for its next stream:
// empty, its buffers kept unless they grew large.
func keepSnapshot(s headerSnapshot) headerSnapshot {
	kv, views := s.kv[:0], s.views[:0]
	if cap(kv) > 256 {
		kv = nil
	}
	if cap(views) > 256 {
		views = nil
	}
	return headerSnapshot{buf: keep(s.buf), kv: kv, views: views}
}
