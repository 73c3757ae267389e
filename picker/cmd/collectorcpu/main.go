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
	exposition := flag.String("exposition", "sim", "what every endpoint serves: sim (the simulator's 23.5 KB exposition) or vllm (a realistic vLLM v0.10.2 one, 54.6 KB)")
	fixture := flag.String("fixture", "", "exposition file every endpoint serves (overrides -exposition)")
	netHTTP := flag.Bool("nethttp", false, "scrape through net/http (a keep-alive http.Client) instead of the collector's own connections, for comparison")
	serve := flag.Bool("serve", false, "internal: be the endpoint server")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the measurement window")
	flag.Parse()

	if *fixture == "" {
		switch *exposition {
		case "sim":
			*fixture = "picker/testdata/vllm_metrics_sim_main.txt"
		case "vllm":
			*fixture = "picker/testdata/vllm_metrics_v0.10.2_full.txt"
		default:
			log.Fatalf("-exposition: %q is neither sim nor vllm", *exposition)
		}
	}
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
	var client *http.Client
	if *netHTTP {
		client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 2, DisableCompression: true, ReadBufferSize: 64 << 10,
		}}
	}
	c := collector.New(client)
	targets := make([]*collector.Target, 0, len(addrs))
	for _, a := range addrs {
		targets = append(targets, c.Acquire(a, spec))
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
	served := (c1 - c0).Seconds() / wall.Seconds()
	fmt.Printf("server child CPU s/s=%.3f (not part of the collector; %.1f µs per exposition served by a Go server writing a static body)\n", served, 1e6*served/scrapes)
	if n := s1.ScrapeErrors - s0.ScrapeErrors; n > 0 {
		for _, t := range targets {
			if e := t.Stats().LastError; e != "" {
				fmt.Printf("an error: %s\n", e)
				break
			}
		}
	}
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
