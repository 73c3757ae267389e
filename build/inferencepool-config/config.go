package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is what the image takes: a YAML (or JSON) file, environment
// variables, or both (the environment wins for the fields it sets).
type Config struct {
	// Listen is the listener's address:port (default 0.0.0.0:10000: all
	// interfaces of the container).
	Listen string `json:"listen,omitempty"`
	// Admin is Envoy's admin address:port (default 0.0.0.0:9901), for
	// /stats/prometheus. "off" leaves the admin interface out.
	Admin string `json:"admin,omitempty"`
	// MetricsNamespace is dynamic_module_config.metrics_namespace: the
	// module's stats are <namespace>.<name> in Envoy and
	// envoy_<namespace>_<name> in /stats/prometheus (default
	// dynamicmodulescustom).
	MetricsNamespace string `json:"metricsNamespace,omitempty"`
	// EndpointHeader, when set, is a response header naming the upstream
	// address that served the request (for demos and debugging: it tells
	// clients internal addresses, so it is off by default).
	EndpointHeader string `json:"endpointHeader,omitempty"`
	// AIRouter is ai_router's filter_config (default {}).
	AIRouter json.RawMessage `json:"aiRouter,omitempty"`
	// Pools are endpoint_picker's pools, each with an Envoy cluster of the
	// same servers.
	Pools []Pool `json:"pools"`
	// OneFilter puts the pools in ai_router's endpointPicker and leaves
	// endpoint_picker out of the chain: ai_router picks too, one filter's
	// hooks a request instead of two (README.md, "One filter").
	OneFilter bool `json:"oneFilter,omitempty"`
	// Fleet, when the image runs as several replicas behind one Service,
	// makes them tell each other their requests in flight (every pool's
	// scrape.fleet.gossip), so four replicas route about as well as one.
	Fleet *Fleet `json:"fleet,omitempty"`
}

// Fleet is the replicas' gossip (picker/README.md, "Round 3: gossip").
type Fleet struct {
	// Peers are the replicas as host:port: IPs, or a headless Service's
	// name that resolves to every replica (this one included), re-resolved
	// every 5 s.
	Peers []string `json:"peers"`
	// Listen is the UDP address:port to receive on (default 0.0.0.0 and
	// the peers' port).
	Listen string `json:"listen,omitempty"`
	// Key, hex, at least 16 bytes, the same on every replica: datagrams
	// without its HMAC are dropped. Give it from a Secret.
	Key string `json:"key,omitempty"`
	// Interval between two rounds (default 5ms).
	Interval string `json:"interval,omitempty"`
}

// Pool is one InferencePool: a set of model servers.
type Pool struct {
	Name string `json:"name"`
	// Model routes requests for this model (ai_router's x-ai-eg-model) to
	// the pool. Requests for other models go to the first pool without a
	// model (else the first pool).
	Model string `json:"model,omitempty"`
	// Servers are host:port: IP literals, or one DNS name with one or more
	// ports (every address it resolves to, on each port, is a server).
	Servers []string `json:"servers"`
	// Picker holds more fields of this endpoint_picker pool (engine,
	// scrape, scheduler, saturation...; picker/README.md). name and
	// endpoints come from the fields above.
	Picker json.RawMessage `json:"picker,omitempty"`
}

// Environment variables the image reads.
const (
	EnvConfig           = "INFERENCEPOOL_CONFIG"            // the config file (default /etc/inferencepool/config.yaml when it exists)
	EnvListen           = "INFERENCEPOOL_LISTEN"            // Config.Listen
	EnvAdmin            = "INFERENCEPOOL_ADMIN"             // Config.Admin
	EnvMetricsNamespace = "INFERENCEPOOL_METRICS_NAMESPACE" // Config.MetricsNamespace
	EnvEndpointHeader   = "INFERENCEPOOL_ENDPOINT_HEADER"   // Config.EndpointHeader
	EnvAIRouter         = "INFERENCEPOOL_AI_ROUTER"         // Config.AIRouter, JSON
	EnvServers          = "INFERENCEPOOL_SERVERS"           // one pool's servers, comma separated
	EnvPool             = "INFERENCEPOOL_POOL"              // that pool's name (default "pool")
	EnvPicker           = "INFERENCEPOOL_PICKER"            // that pool's Picker fields, JSON
	EnvOneFilter        = "INFERENCEPOOL_ONE_FILTER"        // Config.OneFilter: true or false
	EnvFleetPeers       = "INFERENCEPOOL_FLEET_PEERS"       // Fleet.Peers, comma separated
	EnvFleetListen      = "INFERENCEPOOL_FLEET_LISTEN"      // Fleet.Listen
	EnvFleetKey         = "INFERENCEPOOL_FLEET_KEY"         // Fleet.Key
)

// DefaultConfigFile is where the image looks for a mounted config.
const DefaultConfigFile = "/etc/inferencepool/config.yaml"

// Load reads the config file (if any) and applies the environment.
func Load(getenv func(string) string) (*Config, error) {
	c := &Config{}
	path := getenv(EnvConfig)
	if path == "" {
		if _, err := os.Stat(DefaultConfigFile); err == nil {
			path = DefaultConfigFile
		}
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvConfig, err)
		}
		if err := yaml.UnmarshalStrict(raw, c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyEnv(getenv func(string) string) error {
	for env, field := range map[string]*string{EnvListen: &c.Listen, EnvAdmin: &c.Admin,
		EnvMetricsNamespace: &c.MetricsNamespace, EnvEndpointHeader: &c.EndpointHeader} {
		if v := getenv(env); v != "" {
			*field = v
		}
	}
	if v := getenv(EnvAIRouter); v != "" {
		if !json.Valid([]byte(v)) {
			return fmt.Errorf("%s: not JSON", EnvAIRouter)
		}
		c.AIRouter = json.RawMessage(v)
	}
	if v := getenv(EnvOneFilter); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %q: true or false", EnvOneFilter, v)
		}
		c.OneFilter = b
	}
	if err := c.applyFleetEnv(getenv); err != nil {
		return err
	}
	servers := getenv(EnvServers)
	if servers == "" {
		if getenv(EnvPool) != "" || getenv(EnvPicker) != "" {
			return fmt.Errorf("%s or %s without %s", EnvPool, EnvPicker, EnvServers)
		}
		return nil
	}
	if len(c.Pools) > 0 {
		return fmt.Errorf("%s and the config file's pools: give the servers in one place", EnvServers)
	}
	p := Pool{Name: getenv(EnvPool)}
	if p.Name == "" {
		p.Name = "pool"
	}
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			p.Servers = append(p.Servers, s)
		}
	}
	if v := getenv(EnvPicker); v != "" {
		if !json.Valid([]byte(v)) {
			return fmt.Errorf("%s: not JSON", EnvPicker)
		}
		p.Picker = json.RawMessage(v)
	}
	c.Pools = []Pool{p}
	return nil
}

// applyFleetEnv sets the Fleet fields the environment gives.
func (c *Config) applyFleetEnv(getenv func(string) string) error {
	peers, listen, key := getenv(EnvFleetPeers), getenv(EnvFleetListen), getenv(EnvFleetKey)
	if peers == "" && listen == "" && key == "" {
		return nil
	}
	if c.Fleet == nil {
		c.Fleet = &Fleet{}
	}
	if peers != "" {
		c.Fleet.Peers = nil
		for _, p := range strings.Split(peers, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.Fleet.Peers = append(c.Fleet.Peers, p)
			}
		}
	}
	if listen != "" {
		c.Fleet.Listen = listen
	}
	if key != "" {
		c.Fleet.Key = strings.TrimSpace(key) // a Secret's file may end in a newline
	}
	if len(c.Fleet.Peers) == 0 {
		return fmt.Errorf("%s or %s without %s (or the config file's fleet.peers)", EnvFleetListen, EnvFleetKey, EnvFleetPeers)
	}
	return nil
}

// servers is a pool's servers as Envoy and the picker both need them.
type servers struct {
	dnsName string         // "" for IP literals
	ports   []int          // with dnsName
	addrs   []hostPort     // every server, in order
	ips     []string       // ip:port, for IP literals
	seen    map[string]int // duplicates
}

type hostPort struct {
	host string
	port int
}

// parseServers checks a pool's servers: IP literals, or one DNS name. The
// picker hands Envoy ip:port entries and Envoy follows only hosts of the
// routed cluster, so both must list the same servers: a static list of IPs,
// or the same name resolved by both.
func parseServers(field string, list []string) (*servers, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: at least one host:port is required", field)
	}
	s := &servers{seen: map[string]int{}}
	for i, hp := range list {
		host, portStr, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %q: want host:port", field, i, hp)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%s[%d]: %q: port must be 1-65535", field, i, hp)
		}
		if host == "" {
			return nil, fmt.Errorf("%s[%d]: %q: empty host", field, i, hp)
		}
		key := net.JoinHostPort(host, portStr)
		if j, dup := s.seen[key]; dup {
			return nil, fmt.Errorf("%s[%d]: %q is also %s[%d]", field, i, hp, field, j)
		}
		s.seen[key] = i
		s.addrs = append(s.addrs, hostPort{host, port})
		if ip := net.ParseIP(host); ip != nil {
			s.ips = append(s.ips, net.JoinHostPort(ip.String(), portStr))
			continue
		}
		if s.dnsName != "" && s.dnsName != host {
			return nil, fmt.Errorf("%s: %q and %q: a pool takes IP addresses or one DNS name (the picker and Envoy's cluster must resolve the same servers)", field, s.dnsName, host)
		}
		s.dnsName = host
		s.ports = append(s.ports, port)
	}
	if s.dnsName != "" && len(s.ips) > 0 {
		return nil, errors.New(field + ": mixes IP addresses and a DNS name: give one or the other")
	}
	return s, nil
}
