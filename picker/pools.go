package picker

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/endpoints"
)

// Pools are the running pools of one filter config. Build them with Open
// when the config is created, Close them when it is destroyed.
//
// Pool runtimes are shared process-wide: opening a config whose pool is
// identical (same JSON after defaults) to a pool already open returns the
// same runtime, with its endpoint source, scrape targets, prefix index and
// in-flight counts, instead of starting duplicates. The runtime stops when
// the last Pools holding it is closed. Scrape targets are shared further, by
// address and scrape settings, across different pools.
type Pools struct {
	list   []*Pool
	byName map[string]*Pool
	once   sync.Once
}

// Option adjusts Open, for tests and tools.
type Option func(*options)

type options struct {
	collector *collector.Collector
	resolver  endpoints.Resolver
}

// WithCollector scrapes with c instead of the process-wide collector.
func WithCollector(c *collector.Collector) Option { return func(o *options) { o.collector = c } }

// WithResolver resolves DNS sources with r instead of net.DefaultResolver.
func WithResolver(r endpoints.Resolver) Option { return func(o *options) { o.resolver = r } }

var registry = struct {
	sync.Mutex
	pools map[string]*Pool
}{pools: map[string]*Pool{}}

// Open starts (or joins) the pools of a parsed config.
func Open(cfg *Config, opts ...Option) (*Pools, error) {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	if o.collector == nil {
		o.collector = collector.Default()
	}
	ps := &Pools{byName: make(map[string]*Pool, len(cfg.Pools))}
	for i := range cfg.Pools {
		p, err := acquire(&cfg.Pools[i], o)
		if err != nil {
			ps.Close()
			return nil, fmt.Errorf("pools[%d] (%s): %w", i, cfg.Pools[i].Name, err)
		}
		ps.list = append(ps.list, p)
		ps.byName[p.name] = p
	}
	return ps, nil
}

// OpenJSON parses a filter_config and opens its pools.
func OpenJSON(data []byte, opts ...Option) (*Pools, error) {
	cfg, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return Open(cfg, opts...)
}

func acquire(cfg *PoolConfig, o *options) (*Pool, error) {
	fingerprint, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	// The collector and resolver are part of the identity: tests that use
	// their own must not join each other's pools.
	key := fmt.Sprintf("%p/%p/%s", o.collector, o.resolver, fingerprint)
	registry.Lock()
	defer registry.Unlock()
	if p := registry.pools[key]; p != nil {
		p.refs++
		return p, nil
	}
	p, err := newPool(cfg, o)
	if err != nil {
		return nil, err
	}
	p.key, p.refs = key, 1
	registry.pools[key] = p
	return p, nil
}

func release(p *Pool) {
	registry.Lock()
	p.refs--
	last := p.refs == 0
	if last {
		delete(registry.pools, p.key)
	}
	registry.Unlock()
	if last {
		p.close()
	}
}

// Pool returns the pool named name, or nil.
func (ps *Pools) Pool(name string) *Pool { return ps.byName[name] }

// List returns the pools in config order.
func (ps *Pools) List() []*Pool { return ps.list }

// Close releases the pools; the last holder of a runtime stops it. Close is
// idempotent.
func (ps *Pools) Close() {
	ps.once.Do(func() {
		for _, p := range ps.list {
			release(p)
		}
	})
}
