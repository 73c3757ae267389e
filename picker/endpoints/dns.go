package endpoints

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Resolver looks up a name's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// NewDNS returns a source that resolves name every interval and yields every
// address crossed with every port, as for a headless Service whose pods serve
// several data-parallel ranks. A nil resolver means net.DefaultResolver.
// It is asynchronous: Start does not wait for the first lookup (each lookup
// may take up to 5 s, and Envoy's main thread would wait with it).
func NewDNS(name string, ports []int, interval time.Duration, resolver Resolver) *Source {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	timeout := min(interval, 5*time.Second)
	if interval <= 0 {
		timeout = 5 * time.Second
	}
	s := newSource("dns", interval, func(ctx context.Context) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ips, err := resolver.LookupNetIP(ctx, "ip", name)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, errors.New("no addresses for " + name)
		}
		set := make([]string, 0, len(ips)*len(ports))
		for _, ip := range ips {
			for _, p := range ports {
				set = append(set, netip.AddrPortFrom(ip.Unmap(), uint16(p)).String())
			}
		}
		slices.Sort(set)
		return slices.Compact(set), nil
	})
	s.async = true
	return s
}
