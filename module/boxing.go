package main

import "unsafe"

// stringAny returns *p as an `any` holding a string without copying the
// string header to the heap, as converting a string variable to an
// interface does (16 bytes per call). The interface points at *p, which
// must not change while the callee uses it: for SetMetadata, which copies
// the value into Envoy before it returns, a field of the filter is fine.
func stringAny(p *string) any {
	a := any("") // the type word of string; a constant costs no allocation
	(*eface)(unsafe.Pointer(&a)).data = unsafe.Pointer(p)
	return a
}

// eface is the layout of an empty interface (runtime.eface).
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}
