package main

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// loadSampleEvery is how often the requests in flight per rank are sampled.
const loadSampleEvery = 50 * time.Millisecond

// loadSeries is the requests in flight at each rank (as the load generator
// counts them: every proxy's), sampled over the measured window.
type loadSeries struct {
	at      []time.Duration // since the window started
	perRank [][]float64     // [sample][rank]
}

func (l *loadSeries) sample(inFlight []atomic.Int64, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			row := make([]float64, len(inFlight))
			for i := range inFlight {
				row[i] = float64(inFlight[i].Load())
			}
			l.at = append(l.at, now.Sub(start))
			l.perRank = append(l.perRank, row)
		}
	}
}

// cv is the spread of load over the ranks: the coefficient of variation
// (standard deviation / mean) of the in-flight counts of one sample,
// averaged over the samples with any load. 0 is a perfectly even spread.
func (l *loadSeries) cv() float64 {
	var sum float64
	n := 0
	for _, row := range l.perRank {
		var mean float64
		for _, v := range row {
			mean += v
		}
		mean /= float64(len(row))
		if mean == 0 {
			continue
		}
		var ss float64
		for _, v := range row {
			ss += (v - mean) * (v - mean)
		}
		sum += math.Sqrt(ss/float64(len(row))) / mean
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// cpuMeter adds up the CPU time the calling threads spend in measured
// calls: each call runs locked to its OS thread between two reads of that
// thread's CPU clock, so time the thread spends descheduled on a loaded
// machine is not counted (wall time would be).
//
// Reading the clock is a system call whose own CPU is partly inside the
// interval; perCall subtracts that, calibrated once (clockOverhead).
type cpuMeter struct {
	mu    sync.Mutex
	ns    int64
	calls int64 // measured calls
	n     int64 // requests: a pick and its Done count as one
}

func (m *cpuMeter) measure(fn func()) {
	if m == nil {
		fn()
		return
	}
	runtime.LockOSThread()
	t0 := threadCPU()
	fn()
	d := threadCPU() - t0
	runtime.UnlockOSThread()
	m.mu.Lock()
	m.ns += d
	m.calls++
	m.mu.Unlock()
}

// count records one request (its pick and Done).
func (m *cpuMeter) count() {
	m.mu.Lock()
	m.n++
	m.mu.Unlock()
}

// add folds o's counts into m (rounds pooled into one row).
func (m *cpuMeter) add(o *cpuMeter) {
	o.mu.Lock()
	ns, calls, n := o.ns, o.calls, o.n
	o.mu.Unlock()
	m.mu.Lock()
	m.ns += ns
	m.calls += calls
	m.n += n
	m.mu.Unlock()
}

func (m *cpuMeter) perCall() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == 0 {
		return 0
	}
	return max(0, float64(m.ns)-float64(m.calls)*clockOverhead()) / float64(m.n)
}

// clockOverhead is the CPU a measure of nothing reads: the clock's own
// cost inside the interval, in ns. The least of several rounds, so a round
// disturbed by the rest of the benchmark does not inflate it.
var clockOverhead = sync.OnceValue(func() float64 {
	best := math.Inf(1)
	for range 20 {
		var m cpuMeter
		for range 1000 {
			m.measure(func() {})
		}
		best = min(best, float64(m.ns)/float64(m.calls))
	}
	return best
})

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
