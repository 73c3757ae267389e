package picker

import (
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/endpoints"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

// PoolStats is a pool's state for gauges and counters. Counters only grow.
type PoolStats struct {
	Name string

	// Gauges, now.
	Endpoints int // in the current set
	Ready     int // usable, fresh metrics, not saturated, not penalized
	Saturated int // usable metrics but saturated (queue, KV or stale)
	Unhealthy int // no usable metrics
	Penalized int // failed recently

	// Counters.
	Picks        uint64 // StatusOK
	Sheds        uint64 // StatusShed (429)
	NoCapacity   uint64 // StatusNoCapacity (503)
	NoMetrics    uint64 // StatusNoMetrics, and blind picks inside a subset hint (also in Picks)
	ScrapeErrors uint64 // failed or unusable scrapes of this pool's endpoints
	Probes       uint64 // picks that started pick-time probes (Probe)

	Source                endpoints.Stats
	Gossip                *collector.GossipStats // nil without scrape.fleet.gossip
	framework.PluginStats                        // PrefixEntries, PrefixDropped: what the plugins report

	PerEndpoint []EndpointStats
}

// EndpointStats is one endpoint's state.
type EndpointStats struct {
	Addr      string
	Healthy   bool // has usable metrics
	Stale     bool
	Saturated bool
	Penalized bool
	Age       time.Duration // since the last good scrape; 0 when unhealthy
	Waiting   float64
	Running   float64
	KVUsage   float64
	// Cache geometry from the cache config info metric, 0 when not reported.
	BlockSize, NumGPUBlocks int
	// Slots is the learned slot count (0: unknown).
	Slots float64
	collector.TargetStats
}

// Stats returns the pool's current state. It allocates: call it from a
// timer, not per request.
func (p *Pool) Stats() PoolStats {
	v := p.view.Load()
	now := collector.Now()
	s := PoolStats{
		Name:         p.name,
		Endpoints:    len(v.members),
		Picks:        p.picks.Load(),
		Probes:       p.probes.Load(),
		Sheds:        p.sheds.Load(),
		NoCapacity:   p.noCapacity.Load(),
		NoMetrics:    p.noMetrics.Load(),
		ScrapeErrors: p.scrapeErrorsGone.Load(),
		Source:       p.source.Stats(),
		PerEndpoint:  make([]EndpointStats, 0, len(v.members)),
	}
	for _, r := range p.reporters {
		r.ReportStats(&s.PluginStats)
	}
	if p.gossip != nil {
		g := p.gossip.Stats()
		s.Gossip = &g
	}
	for i := range v.members {
		m := &v.members[i]
		es := EndpointStats{Addr: m.addr, TargetStats: m.target.Stats()}
		s.ScrapeErrors += es.ScrapeErrors - m.scrapeErrorsAtJoin
		es.Penalized = m.target.FailedWithin(now, p.penalty)
		if sm := m.target.Sample(); sm != nil {
			es.Healthy = true
			es.Age = time.Duration(now - sm.At)
			es.Stale = now-sm.At > p.staleAfter
			es.Waiting, es.Running, es.KVUsage = sm.Waiting, sm.Running, sm.KVUsage
			es.BlockSize, es.NumGPUBlocks, es.Slots = sm.BlockSize, sm.NumGPUBlocks, sm.PeakRunning
			ep := framework.Endpoint{
				Waiting: sm.Waiting, Running: sm.Running, KVUsage: sm.KVUsage, Stale: es.Stale, Capacity: sm.PeakRunning,
				Pending: max(float64(es.InFlight+es.PeersInFlight-sm.InFlightAtScrape), -(sm.Running + sm.Waiting)),
			}
			es.Saturated = es.Stale || (p.saturation != nil && p.saturation.Saturated(&ep))
		}
		switch {
		case !es.Healthy:
			s.Unhealthy++
		case es.Penalized:
			s.Penalized++
		case es.Saturated:
			s.Saturated++
		default:
			s.Ready++
		}
		s.PerEndpoint = append(s.PerEndpoint, es)
	}
	return s
}

// TakeGossipCounts returns what the pool's gossip socket counted since any
// holder of the socket last took its counts (collector.GossipHandle.TakeUnreported),
// for counters that must see each datagram once; false without gossip.
func (p *Pool) TakeGossipCounts() (collector.GossipCounts, bool) {
	if p.gossip == nil {
		return collector.GossipCounts{}, false
	}
	return p.gossip.TakeUnreported(), true
}
