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
