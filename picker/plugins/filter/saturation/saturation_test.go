package saturation

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

func TestFilter(t *testing.T) {
	eps := []framework.Endpoint{
		{Addr: "queue", Waiting: 4, Pending: 1},
		{Addr: "ok1", Waiting: 4, KVUsage: 0.79},
		{Addr: "kv", KVUsage: 0.8},
		{Addr: "stale", Stale: true},
		{Addr: "ok2"},
	}
	n := New(Defaults).Filter(&framework.Cycle{}, eps)
	require.Equal(t, 2, n)
	require.Equal(t, "ok1", eps[0].Addr)
	require.Equal(t, "ok2", eps[1].Addr)
	var dropped []string
	for _, e := range eps[n:] {
		dropped = append(dropped, e.Addr)
	}
	require.ElementsMatch(t, []string{"queue", "kv", "stale"}, dropped, "dropped endpoints stay after the kept ones")
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Config
		want Config
		errs []string
	}{
		{name: "left out: the defaults", in: Config{}, want: Defaults},
		{name: "set: kept", in: Config{Queue: 10, KVCache: 1}, want: Config{Queue: 10, KVCache: 1}},
		{name: "negative queue", in: Config{Queue: -1}, want: Config{Queue: -1, KVCache: 0.8}, errs: []string{"queue: must be > 0"}},
		{name: "KV over 1", in: Config{KVCache: 1.5}, want: Config{Queue: 5, KVCache: 1.5}, errs: []string{"kvCache: must be in (0, 1]"}},
		{name: "both", in: Config{Queue: -2, KVCache: -1}, want: Config{Queue: -2, KVCache: -1},
			errs: []string{"queue: must be > 0", "kvCache: must be in (0, 1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.SetDefaults()
			require.Equal(t, tc.want, c)
			var errs []string
			c.Validate(func(field, msg string) { errs = append(errs, field+": "+msg) })
			require.Equal(t, tc.errs, errs)
		})
	}
}

func TestNewUsesItsConfig(t *testing.T) {
	ep := &framework.Endpoint{Waiting: 7, KVUsage: 0.9}
	require.True(t, New(Defaults).Saturated(ep))
	require.False(t, New(Config{Queue: 8, KVCache: 0.95}).Saturated(ep))
}
