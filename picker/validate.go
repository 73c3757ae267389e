package picker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/endpoints"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// Validate reports every bad value, each prefixed by its field path. Call it
// on a defaulted config (Parse does both).
func (c *Config) Validate() error {
	v := &validator{}
	if len(c.Pools) == 0 {
		v.add("pools", "at least one pool is required")
	}
	names := map[string]int{}
	for i := range c.Pools {
		p := &c.Pools[i]
		path := fmt.Sprintf("pools[%d]", i)
		if j, dup := names[p.Name]; dup && p.Name != "" {
			v.add(path+".name", fmt.Sprintf("%q is already the name of pools[%d]", p.Name, j))
		}
		names[p.Name] = i
		p.validate(v, path)
	}
	return v.err()
}

type validator struct{ errs []string }

func (v *validator) add(path, msg string) { v.errs = append(v.errs, path+": "+msg) }

func (v *validator) check(ok bool, path, msg string) {
	if !ok {
		v.add(path, msg)
	}
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(v.errs, "; "))
}

func (p *PoolConfig) validate(v *validator, path string) {
	v.check(p.Name != "", path+".name", "required")

	p.validateEndpoints(v, path+".endpoints")

	if _, err := metrics.ForEngine(p.Engine); err != nil {
		v.add(path+".engine", err.Error())
	}
	for _, f := range []struct{ name, value string }{
		{"waiting", p.Metrics.Waiting}, {"running", p.Metrics.Running}, {"kvCacheUsage", p.Metrics.KVCacheUsage},
		{"loraInfo", p.Metrics.LoRAInfo}, {"cacheConfig", p.Metrics.CacheConfig},
	} {
		v.check(!strings.ContainsAny(f.value, " \t\n{}\""), path+".metrics."+f.name, "not a metric name")
	}

	s, sp := &p.Scrape, path+".scrape"
	v.check(strings.HasPrefix(s.Path, "/"), sp+".path", `must start with "/"`)
	v.check(s.Interval > 0, sp+".interval", "must be > 0")
	v.check(s.Timeout > 0, sp+".timeout", "must be > 0")
	v.check(s.Concurrency >= 1, sp+".concurrency", "must be >= 1")
	v.check(s.StaleAfter >= s.Interval, sp+".staleAfter",
		fmt.Sprintf("must be >= scrape.interval (%s), or every endpoint is stale between scrapes", s.Interval.D()))
	v.check(s.UnhealthyAfter >= 1, sp+".unhealthyAfter", "must be >= 1")
	v.check(s.MaxBytes >= 1024, sp+".maxBytes", "must be >= 1024")

	sc, scp := &p.Scheduler, path+".scheduler"
	for i, f := range sc.Filters {
		fp := fmt.Sprintf("%s.filters[%d].type", scp, i)
		if _, ok := filterFactories[f.Type]; !ok {
			v.add(fp, fmt.Sprintf("unknown filter %q (known: %s)", f.Type, strings.Join(typeNames(filterFactories), ", ")))
		}
	}
	seen := map[string]bool{}
	for i, s := range sc.Scorers {
		ip := fmt.Sprintf("%s.scorers[%d]", scp, i)
		if _, ok := scorerFactories[s.Type]; !ok {
			v.add(ip+".type", fmt.Sprintf("unknown scorer %q (known: %s)", s.Type, strings.Join(typeNames(scorerFactories), ", ")))
		} else if seen[s.Type] {
			v.add(ip+".type", fmt.Sprintf("scorer %q listed twice", s.Type))
		}
		seen[s.Type] = true
		v.check(s.Weight != nil && *s.Weight >= 0, ip+".weight", "must be >= 0")
	}
	if _, ok := pickerFactories[sc.Picker.Type]; !ok {
		v.add(scp+".picker.type", fmt.Sprintf("unknown picker %q (known: %s)", sc.Picker.Type, strings.Join(typeNames(pickerFactories), ", ")))
	}
	v.check(sc.MaxEndpoints >= 1 && sc.MaxEndpoints <= 16, scp+".maxEndpoints", "must be 1-16")

	for _, np := range p.pluginParams() {
		np.params.Validate(func(field, msg string) { v.add(path+"."+np.field+"."+field, msg) })
	}

	v.check(p.FailurePenalty != nil && *p.FailurePenalty >= 0, path+".failurePenalty", "must be >= 0")
	v.check(p.FailureMode == FailOpen || p.FailureMode == FailClose, path+".failureMode", fmt.Sprintf("must be %q or %q", FailOpen, FailClose))
	for name := range p.Priorities {
		v.check(name != "", path+".priorities", "objective names must not be empty")
	}
}

func (p *PoolConfig) validateEndpoints(v *validator, path string) {
	e := &p.Endpoints
	n := 0
	if e.Static != nil {
		n++
	}
	if e.DNS != nil {
		n++
	}
	if e.File != nil {
		n++
	}
	if n != 1 {
		v.add(path, "set exactly one of static, dns, file")
		return
	}
	switch {
	case e.Static != nil:
		v.check(len(e.Static) > 0, path+".static", "must list at least one ip:port")
		for i, a := range e.Static {
			if _, err := endpoints.ParseAddr(a); err != nil {
				v.add(fmt.Sprintf("%s.static[%d]", path, i), err.Error())
			}
		}
	case e.DNS != nil:
		v.check(e.DNS.Name != "", path+".dns.name", "required")
		v.check(len(e.DNS.Ports) > 0, path+".dns.ports", "must list at least one port")
		for i, port := range e.DNS.Ports {
			v.check(port >= 1 && port <= 65535, fmt.Sprintf("%s.dns.ports[%d]", path, i), "must be 1-65535")
		}
		v.check(e.DNS.Interval >= Duration(100*time.Millisecond), path+".dns.interval", "must be >= 100ms")
	case e.File != nil:
		v.check(e.File.Path != "", path+".file.path", "required")
		v.check(e.File.Interval >= Duration(10*time.Millisecond), path+".file.interval", "must be >= 10ms")
	}
}
