// Command collectorcpu measures the metrics collector's CPU cost: it scrapes
// N local endpoints at the default interval and reports the collector
// process's CPU seconds per second (getrusage), next to the scrape rate it
// achieved. The endpoints are served by a child process, so their cost is
// not counted.
//
//	go run ./picker/cmd/collectorcpu -endpoints 1000 -duration 10s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func main() {
	n := flag.Int("endpoints", 1000, "endpoints to scrape")
	duration := flag.Duration("duration", 10*time.Second, "measurement window")
	warmup := flag.Duration("warmup", 3*time.Second, "time to let connections and buffers settle")
	interval := flag.Duration("interval", picker.DefaultScrapeInterval, "scrape interval")
	fixture := flag.String("fixture", "picker/testdata/vllm_metrics_sim_main.txt", "exposition every endpoint serves")
	serve := flag.Bool("serve", false, "internal: be the endpoint server")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the measurement window")
	flag.Parse()

	body, err := os.ReadFile(*fixture)
	if err != nil {
		log.Fatal(err)
	}
	if *serve {
		serveEndpoints(*n, body)
		return
	}

	child := exec.Command(os.Args[0], "-serve", "-endpoints", strconv.Itoa(*n), "-fixture", *fixture)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := child.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	var addrs []string
	sc := bufio.NewScanner(out)
	for len(addrs) < *n && sc.Scan() {
		addrs = append(addrs, sc.Text())
	}
	if len(addrs) != *n {
		log.Fatalf("server child gave %d addresses", len(addrs))
	}

	names, _ := metrics.ForEngine(metrics.EngineVLLM)
	spec := collector.Spec{
		Path:           picker.DefaultScrapePath,
		Interval:       *interval,
		Timeout:        picker.DefaultScrapeTimeout,
		Concurrency:    picker.DefaultConcurrency,
		UnhealthyAfter: picker.DefaultUnhealthyAfter,
		MaxBytes:       picker.DefaultMaxBytes,
		Names:          names,
	}
	c := collector.New(nil)
	for _, a := range addrs {
		c.Acquire(a, spec)
	}
	time.Sleep(*warmup)

	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	s0, u0, w0 := c.Stats(), cpu(), time.Now()
	c0 := childCPU(child.Process.Pid)
	time.Sleep(*duration)
	s1, u1, wall := c.Stats(), cpu(), time.Since(w0)
	c1 := childCPU(child.Process.Pid)

	scrapes := float64(s1.Scrapes-s0.Scrapes) / wall.Seconds()
	used := (u1 - u0).Seconds() / wall.Seconds()
	want := float64(*n) / interval.Seconds()
	fmt.Printf("endpoints=%d interval=%s exposition=%dB window=%s\n", *n, *interval, len(body), wall.Round(time.Millisecond))
	fmt.Printf("scrapes/s=%.0f (target %.0f) errors=%d\n", scrapes, want, s1.ScrapeErrors-s0.ScrapeErrors)
	fmt.Printf("collector CPU s/s=%.3f  (%.1f µs CPU per scrape)\n", used, 1e6*used/scrapes)
	fmt.Printf("server child CPU s/s=%.3f (not part of the collector)\n", (c1-c0).Seconds()/wall.Seconds())
}

func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childCPU reads utime+stime of pid from /proc (clock ticks of 10 ms).
func childCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func serveEndpoints(n int, body []byte) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	})
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(l.Addr().String())
		go func() { _ = http.Serve(l, h) }()
	}
	select {}
}
