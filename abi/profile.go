//go:build inferencepool_profile

package abi

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// A profiling build (-tags inferencepool_profile, never shipped) with
// $INFERENCEPOOL_PROFILE_DIR set profiles what abihost --bench measures,
// recording every Go allocation (MemProfileRate 1) unless
// $INFERENCEPOOL_PROFILE_CPU_ONLY is set (recording them all costs more
// than the exchange, which hides its CPU profile): its first
// reading of inferencepool_heap_allocs (the start of the measured
// exchanges) writes heap0.pb.gz and starts cpu.pb.gz, its second (the end)
// stops the CPU profile and writes heap1.pb.gz. Per exchange:
//
//	go tool pprof -sample_index=alloc_objects -base heap0.pb.gz heap1.pb.gz
func init() {
	dir := os.Getenv("INFERENCEPOOL_PROFILE_DIR")
	if dir == "" {
		return
	}
	if os.Getenv("INFERENCEPOOL_PROFILE_CPU_ONLY") == "" {
		runtime.MemProfileRate = 1
	}
	var cpu *os.File
	profileHook = func() {
		if cpu == nil {
			writeHeap(filepath.Join(dir, "heap0.pb.gz"))
			f, err := os.Create(filepath.Join(dir, "cpu.pb.gz"))
			if err == nil && pprof.StartCPUProfile(f) == nil {
				cpu = f
			}
			return
		}
		pprof.StopCPUProfile()
		_ = cpu.Close()
		writeHeap(filepath.Join(dir, "heap1.pb.gz"))
	}
}

func writeHeap(path string) {
	runtime.GC() // the profile is as of the last GC
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("allocs").WriteTo(f, 0)
}
