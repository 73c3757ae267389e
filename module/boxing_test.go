package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStringAny(t *testing.T) {
	for _, s := range []string{"", "10.0.0.1:8000", "10.0.0.1:8000,10.0.0.2:8000"} {
		v := s
		a := stringAny(&v)
		got, ok := a.(string)
		require.True(t, ok)
		require.Equal(t, s, got)
		require.Equal(t, any(s), a, "compares as the ordinary conversion")
	}
	v := "x"
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = stringAny(&v).(string) }))
}
