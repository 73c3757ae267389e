package transform

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "",
		"application/json":                  "application/json",
		"Application/JSON; charset=utf-8":   "application/json",
		" text/event-stream ;charset=utf-8": "text/event-stream",
		"application/problem+json":          "application/problem+json",
	} {
		require.Equal(t, want, mediaType(in), in)
	}
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = mediaType("text/event-stream; charset=utf-8") }))
}
