package abi

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCgoCheckDisabled(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		want    bool
	}{
		{"", false},
		{"cgocheck=0", true},
		{"cgocheck=1", false},
		{"madvdontneed=1,cgocheck=0", true},
		{"cgocheck=0,cgocheck=1", false}, // the last setting wins
		{" cgocheck=0 ", true},
		{"xcgocheck=0", false},
	} {
		t.Run(tc.godebug, func(t *testing.T) {
			require.Equal(t, tc.want, cgoCheckDisabled(tc.godebug))
		})
	}
}
