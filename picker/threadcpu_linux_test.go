package picker

import (
	"syscall"
	"time"
)

// threadCPU returns the calling OS thread's CPU time, user and system
// (getrusage RUSAGE_THREAD). Benchmarks lock their goroutine to its thread
// and report it per op: on a shared machine wall time also counts the
// time other processes held the core.
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
