package picker

import (
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/filter/saturation"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/picker/maxscore"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/kvcache"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/loraaffinity"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/queue"
)

// Defaults. README.md explains each.
const (
	DefaultScrapeInterval = 50 * time.Millisecond
	DefaultScrapeTimeout  = 500 * time.Millisecond
	DefaultScrapePath     = "/metrics"
	DefaultConcurrency    = 64
	DefaultUnhealthyAfter = 3
	DefaultMaxBytes       = 4 << 20
	DefaultDNSInterval    = 5 * time.Second
	DefaultFileInterval   = time.Second
	DefaultFailurePenalty = 5 * time.Second
	DefaultMaxEndpoints   = 3
	defaultStaleIntervals = 2 // staleAfter defaults to this many intervals (100ms at 50ms)
)

// DefaultScorers is the Inference Extension's default profile plus LoRA
// affinity.
func DefaultScorers() []ScorerConfig {
	w := func(v float64) *float64 { return &v }
	return []ScorerConfig{
		{Type: queue.Type, Weight: w(2)},
		{Type: kvcache.Type, Weight: w(2)},
		{Type: prefix.Type, Weight: w(3)},
		{Type: loraaffinity.Type, Weight: w(1)},
	}
}

func (c *Config) applyDefaults() {
	for i := range c.Pools {
		c.Pools[i].applyDefaults()
	}
}

func (p *PoolConfig) applyDefaults() {
	if p.Engine == "" {
		p.Engine = "vllm"
	}
	if d := p.Endpoints.DNS; d != nil && d.Interval == 0 {
		d.Interval = Duration(DefaultDNSInterval)
	}
	if f := p.Endpoints.File; f != nil && f.Interval == 0 {
		f.Interval = Duration(DefaultFileInterval)
	}

	s := &p.Scrape
	if s.Path == "" {
		s.Path = DefaultScrapePath
	}
	if s.Interval == 0 {
		s.Interval = Duration(DefaultScrapeInterval)
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultScrapeTimeout)
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	s.Jitter = s.schedule().WithDefaults().Jitter
	if s.StaleAfter == 0 {
		// The interval the fleet bound may stretch, with the longest
		// jittered wait.
		s.StaleAfter = defaultStaleIntervals * Duration(s.schedule().Interval(s.Interval.D()))
	}
	if s.UnhealthyAfter == 0 {
		s.UnhealthyAfter = DefaultUnhealthyAfter
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = DefaultMaxBytes
	}

	sc := &p.Scheduler
	if sc.Filters == nil {
		sc.Filters = []PluginConfig{{Type: saturation.Type}}
	}
	if sc.Scorers == nil {
		sc.Scorers = DefaultScorers()
	}
	for i := range sc.Scorers {
		if sc.Scorers[i].Weight == nil {
			one := 1.0
			sc.Scorers[i].Weight = &one
		}
	}
	if sc.Picker.Type == "" {
		sc.Picker.Type = maxscore.Type
	}
	if sc.MaxEndpoints == 0 {
		sc.MaxEndpoints = DefaultMaxEndpoints
	}

	for _, np := range p.pluginParams() {
		np.params.SetDefaults()
	}
	if p.FailurePenalty == nil {
		d := Duration(DefaultFailurePenalty)
		p.FailurePenalty = &d
	}
	if p.FailureMode == "" {
		p.FailureMode = FailOpen
	}
}
