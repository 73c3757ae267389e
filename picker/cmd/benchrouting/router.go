package main

import (
	"encoding/json"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
)

// router chooses the endpoint of each request, as a proxy would.
type router interface {
	// route returns the endpoint for body, or shed. done is called with the
	// outcome when the request ends.
	route(seq uint64, body []byte) (endpoint string, shed bool, done func(failed bool))
	close()
}

type roundRobin struct {
	addrs []string
	next  atomic.Uint64
}

func (r *roundRobin) route(uint64, []byte) (string, bool, func(bool)) {
	return r.addrs[(r.next.Add(1)-1)%uint64(len(r.addrs))], false, func(bool) {}
}
func (r *roundRobin) close() {}

type random struct{ addrs []string }

func (r *random) route(uint64, []byte) (string, bool, func(bool)) {
	return r.addrs[rand.IntN(len(r.addrs))], false, func(bool) {}
}
func (r *random) close() {}

// pickers is K independent picker instances, as K proxies would run: each
// has its own collector (its own scrapes), prefix index and in-flight
// counts. Requests reach them round robin, as through a load balancer in
// front of the proxies.
// poolOverride is merged into every picker scenario's pool config (-pool).
var poolOverride map[string]any

// gossipScrape is merged into the gossip row's scrape config (-gossip-scrape).
var gossipScrape map[string]any

type pickers struct {
	pools []*picker.Pools
	addrs []string
	cpu   *cpuMeter // nil: not measured
	// What the picks waited for their probes: in all, and how many waits
	// ran into the probe timeout.
	probeWait     atomic.Int64
	probeTimeouts atomic.Int64
}

// With gossip, the K instances tell each other their requests in flight
// (scrape.fleet.gossip), each on its own 127.0.0.1 port, every one naming
// all K as its peers, as a headless Service would.
func newPickers(k int, addrs []string, pool map[string]any, gossip bool) (*pickers, error) {
	p := &pickers{addrs: addrs}
	var peers []string
	if gossip {
		for range k {
			port, err := freeUDPPort()
			if err != nil {
				return nil, err
			}
			peers = append(peers, fmt.Sprintf("127.0.0.1:%d", port))
		}
	}
	for i := range k {
		cfg := map[string]any{"name": "bench", "endpoints": map[string]any{"static": addrs}}
		for key, v := range pool {
			cfg[key] = v
		}
		for key, v := range poolOverride {
			cfg[key] = v
		}
		if gossip {
			scrape := map[string]any{}
			for _, src := range []any{cfg["scrape"], gossipScrape} {
				if s, ok := src.(map[string]any); ok {
					for key, v := range s {
						scrape[key] = v
					}
				}
			}
			scrape["fleet"] = map[string]any{"gossip": map[string]any{"listen": peers[i], "peers": peers}}
			cfg["scrape"] = scrape
		}
		js, err := json.Marshal(map[string]any{"pools": []any{cfg}})
		if err != nil {
			return nil, err
		}
		// A collector each: pools on separate collectors never share a
		// runtime, so the instances know nothing of each other.
		ps, err := picker.OpenJSON(js, picker.WithCollector(collector.New(nil)))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("picker config: %w", err)
		}
		p.pools = append(p.pools, ps)
	}
	for _, ps := range p.pools {
		if err := ps.List()[0].WaitReady(10e9); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// freeUDPPort returns a port nothing listens on at 127.0.0.1 (now).
func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func (p *pickers) route(seq uint64, body []byte) (string, bool, func(bool)) {
	pool := p.pools[seq%uint64(len(p.pools))].List()[0]
	req := chatRequest(body)
	res := &picker.Result{}
	if p.cpu != nil {
		p.cpu.count()
	}
	waited, timedOut := probeFirst(pool, &req)
	if waited > 0 {
		p.probeWait.Add(int64(waited))
	}
	if timedOut {
		p.probeTimeouts.Add(1)
	}
	p.cpu.measure(func() { pool.Pick(&req, res) })
	switch res.Status {
	case picker.StatusOK:
		return res.Endpoints()[0], false, func(failed bool) {
			outcome := picker.OutcomeOK
			if failed {
				outcome = picker.OutcomeFailed
			}
			p.cpu.measure(func() { res.Done(outcome) })
		}
	case picker.StatusShed:
		return "", true, nil
	default: // no metrics: Envoy's fallback policy would pick
		return p.addrs[rand.IntN(len(p.addrs))], false, func(bool) {}
	}
}

// probeFirst waits, as endpoint_picker's stopped stream does, for the
// pick-time probes of the pool's probe config (pools[].probe, on by
// default; without: -pool '{"probe":{"enabled":false}}'), at most its
// timeout.
func probeFirst(pool *picker.Pool, req *picker.Request) (waited time.Duration, timedOut bool) {
	timeout := pool.ProbeTimeout()
	if timeout == 0 {
		return 0, false
	}
	var left atomic.Int32
	left.Store(1 << 30)
	answered := make(chan struct{})
	start := time.Now()
	n, _ := pool.Probe(req, func() {
		if left.Add(-1) == 0 {
			close(answered)
		}
	})
	if n == 0 || left.Add(int32(n)-1<<30) == 0 {
		return time.Since(start), false // nothing probed, or every probe answered already
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-answered:
	case <-t.C:
		timedOut = true
	}
	return time.Since(start), timedOut
}

// chatRequest reads the workload's chat body as the proxy would hand it to
// the picker: the model and the raw JSON of "messages" (what
// transform.ParseRequest gives for chat; picker must not import transform).
func chatRequest(body []byte) picker.Request {
	var b struct {
		Model    string          `json:"model"`
		Messages json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Model == "" {
		panic(fmt.Sprintf("workload body: %v", err)) // the workload always names a model
	}
	return picker.Request{Model: b.Model, Prompt: b.Messages}
}

func (p *pickers) close() {
	var picks, probes uint64
	for i, ps := range p.pools {
		if st := ps.List()[0].Stats(); st.Probes > 0 {
			log.Printf("proxy %d: %d of %d picks probed first", i, st.Probes, st.Picks)
			picks, probes = picks+st.Picks, probes+st.Probes
		}
		if g := ps.List()[0].Stats().Gossip; g != nil {
			log.Printf("proxy %d gossip: %d peers heard, %d datagrams sent, %d taken, %d refused", i, g.Peers, g.Sent, g.Received, g.Refused)
		}
	}
	if probes > 0 {
		log.Printf("probes: %d of %d picks waited %.2f ms on average (all picks: %.2f ms), %d timed out",
			probes, picks, float64(p.probeWait.Load())/float64(probes)/1e6, float64(p.probeWait.Load())/float64(picks)/1e6, p.probeTimeouts.Load())
	}
	for _, ps := range p.pools {
		ps.Close()
	}
}
