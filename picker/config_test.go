package picker

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/strictjson"
)

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`{"pools":[{"name":"p","endpoints":{"static":["10.0.0.1:8000"]}}]}`))
	require.NoError(t, err)
	p := cfg.Pools[0]
	require.Equal(t, "vllm", p.Engine)
	require.Equal(t, ScrapeConfig{
		Path:           "/metrics",
		Interval:       Duration(50 * time.Millisecond),
		Timeout:        Duration(500 * time.Millisecond),
		Concurrency:    64,
		StaleAfter:     Duration(100 * time.Millisecond),
		UnhealthyAfter: 3,
		MaxBytes:       4 << 20,
		Jitter:         p.Scrape.Jitter,
	}, p.Scrape)
	require.InDelta(t, 0.2, *p.Scrape.Jitter, 0)
	require.Equal(t, []PluginConfig{{Type: "saturation"}}, p.Scheduler.Filters)
	require.Equal(t, DefaultScorers(), p.Scheduler.Scorers)
	require.Equal(t, "max-score", p.Scheduler.Picker.Type)
	require.Equal(t, 3, p.Scheduler.MaxEndpoints)
	require.Equal(t, "rendezvous", p.Prefix.Mode)
	require.Equal(t, 64, p.Prefix.BlockSize)
	require.Equal(t, 256, p.Prefix.MaxBlocks)
	require.Equal(t, 0, p.Prefix.LRUCapacity, "sized from the scraped cache geometry")
	require.Equal(t, 4.0, p.Prefix.BytesPerToken)
	require.Equal(t, 8, p.Prefix.RendezvousBlocks)
	require.Equal(t, 0.0, *p.Prefix.QueueSlack)
	require.Equal(t, SaturationConfig{Queue: 5, KVCache: 0.8}, p.Saturation)
	require.Equal(t, Duration(5*time.Second), *p.FailurePenalty)
	require.Equal(t, FailOpen, p.FailureMode)
}

func TestParseFull(t *testing.T) {
	cfg, err := Parse([]byte(`{"pools":[
	  {"name":"chat","endpoints":{"dns":{"name":"vllm.default.svc","ports":[8000,8001]}},
	   "engine":"sglang","metrics":{"waiting":"my_queue","kvCacheUsage":"my_kv"},
	   "scrape":{"interval":"1s","timeout":"300ms","concurrency":8,"path":"/m","staleAfter":"3s","unhealthyAfter":5,"maxBytes":65536},
	   "scheduler":{"filters":[],"scorers":[{"type":"queue"},{"type":"in-flight","weight":0.5}],"picker":{"type":"weighted-random"},"maxEndpoints":5},
	   "prefix":{"mode":"rendezvous","blockSize":128,"maxBlocks":64,"lruCapacity":1000,"rendezvousBlocks":4,"queueSlack":1.5},
	   "saturation":{"queue":10,"kvCache":0.95},
	   "failurePenalty":"0s","failureMode":"fail-close","priorities":{"critical":1,"batch":-1},"defaultPriority":-1},
	  {"name":"batch","endpoints":{"file":{"path":"/etc/eps.yaml","interval":"2s"}}}
	]}`))
	require.NoError(t, err)
	p := cfg.Pools[0]
	require.Equal(t, []int{8000, 8001}, p.Endpoints.DNS.Ports)
	require.Equal(t, Duration(5*time.Second), p.Endpoints.DNS.Interval)
	require.Empty(t, p.Scheduler.Filters, "an explicit empty list means no filters")
	require.Equal(t, 1.0, *p.Scheduler.Scorers[0].Weight, "weight defaults to 1")
	require.Equal(t, 0.5, *p.Scheduler.Scorers[1].Weight)
	require.Equal(t, 1.5, *p.Prefix.QueueSlack)
	require.Equal(t, Duration(0), *p.FailurePenalty, "0s disables the penalty")
	require.Equal(t, -1, p.DefaultPriority)
	require.Equal(t, Duration(2*time.Second), cfg.Pools[1].Endpoints.File.Interval)
}

func TestParseErrors(t *testing.T) {
	pool := func(fields string) string {
		return `{"pools":[{"name":"p","endpoints":{"static":["10.0.0.1:8000"]}` + fields + `}]}`
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{name: "empty input", in: ``, want: `empty endpoint_picker config`},
		{name: "empty object", in: `{}`, want: `pools: at least one pool is required`},
		{name: "no pools", in: `{"pools":[]}`, want: `pools: at least one pool is required`},
		{name: "not JSON", in: `{"pools":`, want: `invalid JSON`},
		{name: "unknown top-level field", in: `{"pool":[]}`, want: `unknown field "pool" (known: pools)`},
		{name: "wrong case", in: pool(`,"Engine":"vllm"`), want: `pools[0]: unknown field "Engine" (did you mean "engine"?)`},
		{name: "unknown nested field", in: pool(`,"scrape":{"intervall":"1s"}`), want: `pools[0].scrape: unknown field "intervall"`},
		{name: "negative weight", in: pool(`,"scheduler":{"scorers":[{"type":"queue"},{"type":"kv-cache-utilization","weight":-1}]}`), want: `pools[0].scheduler.scorers[1].weight: must be >= 0`},
		{name: "weight as string", in: pool(`,"scheduler":{"scorers":[{"type":"queue","weight":"2"}]}`), want: `pools[0].scheduler.scorers[0].weight: must be a number`},
		{name: "unknown scorer", in: pool(`,"scheduler":{"scorers":[{"type":"magic"}]}`), want: `pools[0].scheduler.scorers[0].type: unknown scorer "magic" (known: in-flight, kv-cache-utilization, lora-affinity, prefix-cache, queue)`},
		{name: "duplicate scorer", in: pool(`,"scheduler":{"scorers":[{"type":"queue"},{"type":"queue"}]}`), want: `pools[0].scheduler.scorers[1].type: scorer "queue" listed twice`},
		{name: "unknown filter", in: pool(`,"scheduler":{"filters":[{"type":"x"}]}`), want: `pools[0].scheduler.filters[0].type: unknown filter "x" (known: saturation)`},
		{name: "unknown picker", in: pool(`,"scheduler":{"picker":{"type":"random"}}`), want: `pools[0].scheduler.picker.type: unknown picker "random" (known: max-score, weighted-random)`},
		{name: "list too long", in: pool(`,"scheduler":{"maxEndpoints":17}`), want: `pools[0].scheduler.maxEndpoints: must be 1-16`},
		{name: "bad duration", in: pool(`,"scrape":{"interval":"fast"}`), want: `pools[0].scrape.interval: "fast" is not a duration`},
		{name: "number as duration", in: pool(`,"scrape":{"interval":100}`), want: `pools[0].scrape.interval: want a duration string`},
		{name: "negative duration", in: pool(`,"scrape":{"timeout":"-1s"}`), want: `pools[0].scrape.timeout: must be > 0`},
		{name: "jitter out of range", in: pool(`,"scrape":{"jitter":1.5}`), want: `pools[0].scrape.jitter: must be in [0, 1]`},
		{name: "fleet bound stretches past 10s", in: pool(`,"scrape":{"fleet":{"proxies":100,"serverRate":5}}`), want: `pools[0].scrape.fleet.serverRate:`},
		{name: "stale before the stretched interval", in: pool(`,"scrape":{"staleAfter":"1s","fleet":{"proxies":20,"serverRate":10}}`), want: `pools[0].scrape.staleAfter: must be >= the scrape interval (2s)`},
		{name: "stale before the next scrape", in: pool(`,"scrape":{"interval":"1s","staleAfter":"500ms"}`), want: `pools[0].scrape.staleAfter: must be >= the scrape interval (1s)`},
		{name: "path", in: pool(`,"scrape":{"path":"metrics"}`), want: `pools[0].scrape.path: must start with "/"`},
		{name: "integer expected", in: pool(`,"scrape":{"concurrency":1.5}`), want: `pools[0].scrape.concurrency: must be an integer`},
		{name: "unknown engine", in: pool(`,"engine":"tgi"`), want: `pools[0].engine: unknown engine "tgi"`},
		{name: "bad metric name", in: pool(`,"metrics":{"waiting":"a b"}`), want: `pools[0].metrics.waiting: not a metric name`},
		{name: "prefix mode", in: pool(`,"prefix":{"mode":"magic"}`), want: `pools[0].prefix.mode: must be "learned", "rendezvous" or "inference-extension"`},
		{name: "prefix LRU capacity", in: pool(`,"prefix":{"lruCapacity":-5}`), want: `pools[0].prefix.lruCapacity: must be >= 1`},
		{name: "prefix bytes per token", in: pool(`,"prefix":{"bytesPerToken":100}`), want: `pools[0].prefix.bytesPerToken: must be in (0, 64]`},
		{name: "prefix slack", in: pool(`,"prefix":{"queueSlack":-1}`), want: `pools[0].prefix.queueSlack: must be >= 0`},
		{name: "KV threshold", in: pool(`,"saturation":{"kvCache":1.5}`), want: `pools[0].saturation.kvCache: must be in (0, 1]`},
		{name: "failure mode", in: pool(`,"failureMode":"open"`), want: `pools[0].failureMode: must be "fail-open" or "fail-close"`},
		{name: "negative penalty", in: pool(`,"failurePenalty":"-1s"`), want: `pools[0].failurePenalty: must be >= 0`},
		{name: "priority type", in: pool(`,"priorities":{"batch":"low"}`), want: `pools[0].priorities["batch"]: must be an integer`},
		{name: "no name", in: `{"pools":[{"endpoints":{"static":["10.0.0.1:8000"]}}]}`, want: `pools[0].name: required`},
		{name: "duplicate name", in: `{"pools":[{"name":"a","endpoints":{"static":["10.0.0.1:8000"]}},{"name":"a","endpoints":{"static":["10.0.0.1:8000"]}}]}`, want: `pools[1].name: "a" is already the name of pools[0]`},
		{name: "no source", in: `{"pools":[{"name":"a","endpoints":{}}]}`, want: `pools[0].endpoints: set exactly one of static, dns, file`},
		{name: "two sources", in: `{"pools":[{"name":"a","endpoints":{"static":["10.0.0.1:8000"],"file":{"path":"x"}}}]}`, want: `pools[0].endpoints: set exactly one of static, dns, file`},
		{name: "empty static", in: `{"pools":[{"name":"a","endpoints":{"static":[]}}]}`, want: `pools[0].endpoints.static: must list at least one ip:port`},
		{name: "hostname in static", in: `{"pools":[{"name":"a","endpoints":{"static":["10.0.0.1:8000","vllm:8000"]}}]}`, want: `pools[0].endpoints.static[1]: "vllm:8000" is not ip:port`},
		{name: "DNS port", in: `{"pools":[{"name":"a","endpoints":{"dns":{"name":"x","ports":[0]}}}]}`, want: `pools[0].endpoints.dns.ports[0]: must be 1-65535`},
		{name: "DNS without ports", in: `{"pools":[{"name":"a","endpoints":{"dns":{"name":"x"}}}]}`, want: `pools[0].endpoints.dns.ports: must list at least one port`},
		{name: "file without path", in: `{"pools":[{"name":"a","endpoints":{"file":{}}}]}`, want: `pools[0].endpoints.file.path: required`},
		{name: "every error is reported", in: pool(`,"failureMode":"x","saturation":{"queue":-1}`), want: `pools[0].saturation.queue: must be > 0; pools[0].failureMode: must be`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestREADMEDocumentsEveryField walks the config's JSON fields and checks
// that picker/README.md has a table row for each path.
func TestREADMEDocumentsEveryField(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)`").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	var paths []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeFor[Duration]() {
			return
		}
		for f := range strictjson.Fields(t) {
			p := f
			if prefix != "" {
				p = prefix + "." + f
			}
			paths = append(paths, p)
			walk(p, strictjson.Fields(t)[f].Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
	var missing []string
	for _, p := range paths {
		if !documented[p] {
			missing = append(missing, p)
		}
	}
	require.Empty(t, missing, "README.md needs a row `| `path` |` for:\n%s", strings.Join(missing, "\n"))
}
