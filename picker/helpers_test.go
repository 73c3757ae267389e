package picker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
)

// openManual opens a one-pool config whose endpoints are fed by hand.
func openManual(tb testing.TB, cfg string) *Pool {
	tb.Helper()
	ps, err := OpenJSON([]byte(cfg), WithCollector(collector.NewManual()))
	require.NoError(tb, err)
	tb.Cleanup(ps.Close)
	require.Len(tb, ps.List(), 1)
	return ps.List()[0]
}

// staticConfig is a pool of addrs with extra pool fields (JSON, may be "").
func staticConfig(addrs []string, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"pools":[{"name":"p","endpoints":{"static":["%s"]}%s}]}`, strings.Join(addrs, `","`), extra)
}

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8000", i/250, i%250+1)
	}
	return out
}

// publish gives addr fresh metrics.
func publish(tb testing.TB, p *Pool, addr string, s metrics.Sample) {
	tb.Helper()
	v := p.view.Load()
	i, ok := v.byAddr[addr]
	require.True(tb, ok, "no endpoint %s", addr)
	t := v.members[i].target
	if s.At == 0 {
		s.At = collector.Now()
	}
	s.InFlightAtScrape = t.Known()
	t.Publish(&s)
}

func target(tb testing.TB, p *Pool, addr string) *collector.Target {
	tb.Helper()
	v := p.view.Load()
	i, ok := v.byAddr[addr]
	require.True(tb, ok, "no endpoint %s", addr)
	return v.members[i].target
}

// chatPrompt returns a chat messages array of about size bytes: a system
// prompt shared by every request of a tenant, then a user message.
func chatPrompt(system string, user string, size int) []byte {
	var b strings.Builder
	b.WriteString(`[{"role":"system","content":"`)
	b.WriteString(system)
	b.WriteString(`"},{"role":"user","content":"`)
	b.WriteString(user)
	for b.Len() < size-3 {
		b.WriteString(" lorem ipsum dolor sit amet")
	}
	s := b.String()[:size-3] + `"}]`
	return []byte(s)
}

// flushPrefixIndex applies the learned prefix index's queued updates now.
func flushPrefixIndex(p *Pool) {
	for _, pl := range p.profile.Plugins() {
		if s, ok := pl.(*prefix.Scorer); ok && s.Index() != nil {
			s.Index().Flush()
		}
	}
}
