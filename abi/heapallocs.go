package abi

// #include <stdint.h>
import "C"

import (
	"runtime"
	"runtime/metrics"
)

// heapAllocSamples are the Go heap allocations counted since the process
// started (small ones and tiny ones are counted apart).
var heapAllocSamples = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/tiny/allocs:objects"}}

// inferencepool_heap_allocs returns how many Go heap allocations the
// process has made so far, for a host's benchmark (abihost --bench reports
// allocations per exchange from two readings). Envoy never calls it. It
// reads runtime/metrics, which does not stop the world. Not safe for
// concurrent callers (one sample slice): the bench thread calls it alone.
//
//export inferencepool_heap_allocs
func inferencepool_heap_allocs() C.uint64_t {
	if profileHook != nil {
		profileHook()
	}
	metrics.Read(heapAllocSamples)
	var n uint64
	for _, s := range heapAllocSamples {
		if s.Value.Kind() == metrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return C.uint64_t(n)
}

// inferencepool_cgo_calls returns how many calls from Go into C the
// process has made so far (runtime.NumCgoCall), for a host's benchmark:
// abihost --bench reports the crossings from Go per exchange from two
// readings (the module's background goroutines make none: their system
// calls are not cgo calls). Envoy never calls it.
//
//export inferencepool_cgo_calls
func inferencepool_cgo_calls() C.uint64_t {
	return C.uint64_t(runtime.NumCgoCall())
}

// profileHook, set by a profiling build (profile.go), runs at each reading.
var profileHook func()
