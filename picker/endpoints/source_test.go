package endpoints

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{in: "10.0.0.1:8000", want: "10.0.0.1:8000"},
		{in: "[::1]:80", want: "[::1]:80"},
		{in: "[::ffff:10.0.0.1]:80", want: "10.0.0.1:80"},
		{in: "10.0.0.1", wantErr: "not ip:port"},
		{in: "host:80", wantErr: "not ip:port"},
		{in: "10.0.0.1:0", wantErr: "port must be"},
		{in: "10.0.0.1:70000", wantErr: "not ip:port"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAddr(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// recorder collects the sets a source publishes.
type recorder struct {
	mu   sync.Mutex
	sets [][]string
}

func (r *recorder) on(set []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets = append(r.sets, set)
}

func (r *recorder) last() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil
	}
	return r.sets[len(r.sets)-1]
}

func TestStatic(t *testing.T) {
	s, err := NewStatic([]string{"10.0.0.2:80", "10.0.0.1:80", "10.0.0.2:80"})
	require.NoError(t, err)
	var r recorder
	s.Start(r.on)
	defer s.Close()
	require.Equal(t, [][]string{{"10.0.0.1:80", "10.0.0.2:80"}}, r.sets)
	require.Equal(t, Stats{Kind: "static", Updates: 1}, s.Stats())

	_, err = NewStatic([]string{"10.0.0.1:80", "nope"})
	require.ErrorContains(t, err, `entry 1: "nope" is not ip:port`)
}

// fakeResolver answers from a table that tests change between polls.
type fakeResolver struct {
	mu  sync.Mutex
	ips []netip.Addr
	err error
}

func (f *fakeResolver) set(err error, ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.ips = err, nil
	for _, s := range ips {
		f.ips = append(f.ips, netip.MustParseAddr(s))
	}
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, _ string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ips, f.err
}

func TestDNS(t *testing.T) {
	res := &fakeResolver{}
	res.set(nil, "10.0.0.2", "10.0.0.1")
	// A long interval: the test drives polls itself.
	s := NewDNS("pool.example", []int{8000, 8001}, time.Hour, res)
	var r recorder
	s.Start(r.on)
	defer s.Close()
	require.Eventually(t, func() bool { return r.last() != nil }, 5*time.Second, time.Millisecond, "the first lookup runs after Start returns")
	require.Equal(t, []string{"10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.2:8000", "10.0.0.2:8001"}, r.last())

	for _, step := range []struct {
		name     string
		err      error
		ips      []string
		want     []string
		failures uint64
		updates  uint64
	}{
		{name: "unchanged answer publishes nothing", ips: []string{"10.0.0.1", "10.0.0.2"}, want: []string{"10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.2:8000", "10.0.0.2:8001"}, updates: 1},
		{name: "NXDOMAIN keeps the last set", err: errors.New("no such host"), want: []string{"10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.2:8000", "10.0.0.2:8001"}, failures: 1, updates: 1},
		{name: "empty answer keeps the last set", want: []string{"10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.2:8000", "10.0.0.2:8001"}, failures: 2, updates: 1},
		{name: "scale down", ips: []string{"10.0.0.1"}, want: []string{"10.0.0.1:8000", "10.0.0.1:8001"}, failures: 2, updates: 2},
	} {
		t.Run(step.name, func(t *testing.T) {
			res.set(step.err, step.ips...)
			s.poll(r.on)
			require.Equal(t, step.want, r.last())
			st := s.Stats()
			require.Equal(t, step.failures, st.Failures)
			require.Equal(t, step.updates, st.Updates)
		})
	}
	require.Contains(t, s.Stats().LastError, "no addresses for pool.example")
}

func TestDNSLocalhost(t *testing.T) {
	s := NewDNS("localhost", []int{9}, 0, nil)
	var r recorder
	s.Start(r.on)
	require.Eventually(t, func() bool { return r.last() != nil }, 5*time.Second, time.Millisecond)
	s.Close()
	require.Contains(t, r.last(), "127.0.0.1:9")
}

// blockingResolver answers only once released, or fails when its context
// ends (as net.Resolver does).
type blockingResolver struct {
	release chan struct{}
	calls   atomic.Int32
}

func (b *blockingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
		return []netip.Addr{netip.MustParseAddr("10.0.0.9")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Start runs on Envoy's main thread while it loads the config: it must not
// wait for a DNS lookup. The set appears when the lookup answers.
func TestDNSStartDoesNotWaitForTheLookup(t *testing.T) {
	t.Run("answers later", func(t *testing.T) {
		res := &blockingResolver{release: make(chan struct{})}
		s := NewDNS("slow.example", []int{80}, time.Hour, res)
		var r recorder
		s.Start(r.on) // returns with the lookup still blocked
		defer s.Close()
		require.Eventually(t, func() bool { return res.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
		require.Nil(t, r.last())
		require.Nil(t, s.Current())
		close(res.release)
		require.Eventually(t, func() bool { return len(r.last()) == 1 }, 5*time.Second, time.Millisecond)
		require.Equal(t, []string{"10.0.0.9:80"}, s.Current())
	})
	t.Run("closed while looking up", func(t *testing.T) {
		res := &blockingResolver{release: make(chan struct{})}
		s := NewDNS("slow.example", []int{80}, 0, res)
		var r recorder
		s.Start(r.on)
		require.Eventually(t, func() bool { return res.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
		s.Close() // cancels the lookup and waits for the poller
		require.Nil(t, r.last())
		require.Zero(t, s.Stats().Failures, "a cancelled lookup is not the name's failure")
	})
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "endpoints.yaml")
	s := NewFile(path, time.Hour)
	var r recorder
	s.Start(r.on)
	defer s.Close()
	require.Nil(t, r.last(), "missing file: no set yet")
	require.Equal(t, uint64(1), s.Stats().Failures)

	version := 0
	write := func(content string) {
		version++
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		// Distinct mtimes even on coarse-grained file systems.
		mt := time.Unix(1_700_000_000+int64(version), 0)
		require.NoError(t, os.Chtimes(path, mt, mt))
	}
	for _, step := range []struct {
		name     string
		content  string // "" removes the file
		want     []string
		failures uint64
	}{
		{name: "YAML list", content: "- 10.0.0.2:80\n- 10.0.0.1:80\n", want: []string{"10.0.0.1:80", "10.0.0.2:80"}, failures: 1},
		{name: "JSON list", content: `["10.0.0.3:80"]`, want: []string{"10.0.0.3:80"}, failures: 1},
		{name: "object form", content: "endpoints:\n  - 10.0.0.4:80\n", want: []string{"10.0.0.4:80"}, failures: 1},
		{name: "bad entry keeps the last set", content: "- 10.0.0.5:80\n- pod-5:80\n", want: []string{"10.0.0.4:80"}, failures: 2},
		{name: "unknown field", content: "endpoint: [10.0.0.6:80]\n", want: []string{"10.0.0.4:80"}, failures: 3},
		{name: "empty list", content: "[]", want: []string{"10.0.0.4:80"}, failures: 4},
		{name: "not YAML", content: "- [\n", want: []string{"10.0.0.4:80"}, failures: 5},
		{name: "removed keeps the last set", want: []string{"10.0.0.4:80"}, failures: 6},
		{name: "back", content: "- 10.0.0.7:80\n", want: []string{"10.0.0.7:80"}, failures: 6},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.content == "" {
				require.NoError(t, os.Remove(path))
			} else {
				write(step.content)
			}
			s.poll(r.on)
			s.poll(r.on) // an unchanged file is not re-read nor re-counted
			require.Equal(t, step.want, r.last())
			require.Equal(t, step.failures, s.Stats().Failures)
		})
	}
}

func TestFilePollsOnInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eps.json")
	require.NoError(t, os.WriteFile(path, []byte(`["10.0.0.1:80"]`), 0o600))
	s := NewFile(path, 5*time.Millisecond)
	var r recorder
	s.Start(r.on)
	defer s.Close()
	require.NoError(t, os.WriteFile(path, []byte(`["10.0.0.2:80","10.0.0.3:80"]`), 0o600))
	require.Eventually(t, func() bool { return len(r.last()) == 2 }, 5*time.Second, time.Millisecond)
}
