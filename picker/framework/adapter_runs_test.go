package framework

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func TestAdapterRuns(t *testing.T) {
	eps := []Endpoint{
		{LoRA: metrics.NewLoRA([]string{"sql"}, nil, 2)},
		{LoRA: metrics.NewLoRA([]string{"other"}, []string{"sql"}, 2)},
		{}, // no LoRA state
	}
	var c Cycle
	c.Reset(&Request{Model: "sql", ModelKey: metrics.Key("sql")}, 0, 1)
	require.Equal(t, []bool{true, false, false}, c.AdapterRuns(eps))
	// Cached for this list: a change to the endpoints is not seen...
	eps[1].LoRA = metrics.NewLoRA([]string{"sql"}, nil, 2)
	require.Equal(t, []bool{true, false, false}, c.AdapterRuns(eps))
	// ...but a shorter list (a filter's), or a new cycle, is computed anew.
	require.Equal(t, []bool{true, true}, c.AdapterRuns(eps[:2]))
	c.Reset(&Request{Model: "other", ModelKey: metrics.Key("other")}, 0, 1)
	require.Equal(t, []bool{false, false}, c.AdapterRuns(eps[:2]), "the same list in a new cycle")
	c.Reset(&Request{}, 0, 1)
	require.Equal(t, []bool{false, false, false}, c.AdapterRuns(eps), "no model: nothing runs it")
	require.Nil(t, c.AdapterRuns(nil))
}
