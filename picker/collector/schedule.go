package collector

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Schedule is the collector's own part of a pool's scrape configuration:
// how a fleet of proxies keeps its scrape load on each server bounded.
// Every proxy scrapes every endpoint, so a server serves proxies/interval
// expositions a second; ServerRate caps that by stretching the interval,
// and Jitter keeps proxies (and one proxy's targets) from drifting into
// step, so a server sees its scrapes spread over the interval, not in bursts.
//
// JSON, under pools[].scrape: "jitter", "fleet": {"proxies", "serverRate"}.
type Schedule struct {
	// Jitter spreads each wait uniformly over interval × [1-Jitter/2, 1+Jitter/2].
	// [0, 1]; 0 is a fixed period.
	Jitter *float64 `json:"jitter,omitempty"`
	Fleet  Fleet    `json:"fleet,omitzero"`
}

// Fleet describes the proxies that scrape the same servers.
type Fleet struct {
	// Proxies scraping the same servers, this one included (0: unknown,
	// counted as 1). Set it from the deployment (the replica count).
	Proxies int `json:"proxies,omitempty"`
	// ServerRate is the most expositions per second one server should serve
	// the whole fleet (0: no bound). With it, the interval becomes at least
	// Proxies / ServerRate.
	ServerRate float64 `json:"serverRate,omitempty"`
	// Gossip, when set, has the fleet's proxies tell each other their
	// requests in flight (gossip_config.go).
	Gossip *Gossip `json:"gossip,omitempty"`
}

// DefaultJitter: waits vary by ±10% of the interval.
const DefaultJitter = 0.2

// maxDerivedInterval bounds what ServerRate can stretch the interval to:
// metrics older than this are not worth routing on.
const maxDerivedInterval = 10 * time.Second

// WithDefaults returns s with unset fields at their defaults.
func (s Schedule) WithDefaults() Schedule {
	if s.Jitter == nil {
		j := DefaultJitter
		s.Jitter = &j
	}
	return s
}

// FieldError is a configuration problem at a JSON path.
type FieldError struct{ Field, Problem string }

func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// Validate returns the problems of s (after WithDefaults) with the
// configured interval, each naming its field under path (e.g.
// "pools[0].scrape").
func (s Schedule) Validate(path string, interval time.Duration) []FieldError {
	var errs []FieldError
	if j := s.Jitter; j != nil && !(*j >= 0 && *j <= 1) {
		errs = append(errs, FieldError{path + ".jitter", "must be in [0, 1]"})
	}
	if s.Fleet.Proxies < 0 {
		errs = append(errs, FieldError{path + ".fleet.proxies", "must be >= 0"})
	}
	if r := s.Fleet.ServerRate; !(r >= 0) || math.IsInf(r, 0) {
		errs = append(errs, FieldError{path + ".fleet.serverRate", "must be a finite number >= 0"})
	}
	if g := s.Fleet.Gossip; g != nil {
		errs = append(errs, g.validate(path+".fleet.gossip")...)
	}
	if r := s.Fleet.ServerRate; r > 0 && !math.IsInf(r, 0) && interval > 0 {
		if d := s.Interval(interval); d > maxDerivedInterval {
			errs = append(errs, FieldError{path + ".fleet.serverRate", fmt.Sprintf(
				"%d proxies at %g expositions/s per server need a %s scrape interval, more than %s: metrics that old are not worth routing on",
				max(s.Fleet.Proxies, 1), r, d, maxDerivedInterval)})
		}
	}
	return errs
}

// Interval returns the scrape interval to use: the configured one, or
// longer when the fleet would otherwise ask each server for more than
// ServerRate expositions a second.
func (s Schedule) Interval(configured time.Duration) time.Duration {
	if s.Fleet.ServerRate <= 0 {
		return configured
	}
	fleet := time.Duration(float64(max(s.Fleet.Proxies, 1)) / s.Fleet.ServerRate * float64(time.Second))
	return max(configured, fleet.Round(time.Millisecond))
}

// SpecJitter returns the Spec.Jitter for s: 0 (the default) when unset,
// negative for an explicit 0.
func (s Schedule) SpecJitter() float64 {
	switch {
	case s.Jitter == nil:
		return 0
	case *s.Jitter == 0:
		return -1
	}
	return *s.Jitter
}

// wait returns one jittered interval.
func wait(interval time.Duration, jitter float64) time.Duration {
	if jitter <= 0 {
		return interval
	}
	return time.Duration(float64(interval) * (1 + jitter*(rand.Float64()-0.5)))
}

// scheduleTick is the grid scrape starts are put on: interval/20, 5 ms at
// the default 100 ms. The targets due within one tick wake together, so the
// process wakes once per tick for a batch of scrapes, whose responses then
// arrive together (one netpoll returns them all), rather than once per
// scrape. Waking the process's threads and the netpoller is much of a
// scrape's CPU when the scrapes are spread out: at 3,000 scrapes/s the grid
// cut the threads' sleeps and wakes per scrape from ~1.5 to ~0.9. A batch
// (50 at 1,000 endpoints every 100 ms) stays under the default concurrency
// of 64. Rounding to the nearest tick keeps the mean period and the jitter's
// spread; one proxy's ticks are not another's (each has its own epoch).
func scheduleTick(interval time.Duration) time.Duration { return interval / 20 }

// untilTick returns the wait until at rounded to the nearest multiple of
// tick since the process's epoch, shared by every target; 0 if that is past.
func untilTick(at time.Time, tick time.Duration) time.Duration {
	return max(time.Until(epoch.Add(onTick(at.Sub(epoch), tick))), 0)
}

// onTick rounds d to the nearest multiple of tick (tick <= 0: d).
func onTick(d, tick time.Duration) time.Duration {
	if tick <= 0 {
		return d
	}
	return (d + tick/2) / tick * tick
}
