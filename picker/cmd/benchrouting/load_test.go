package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadSeriesCV(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows [][]float64
		want float64
	}{
		{name: "even spread", rows: [][]float64{{3, 3, 3, 3}}, want: 0},
		{name: "all on one rank", rows: [][]float64{{0, 0, 0, 4}}, want: math.Sqrt(3)},
		{name: "samples averaged, idle ones skipped", rows: [][]float64{{2, 2}, {0, 0}, {1, 3}}, want: 0.25},
		{name: "no samples", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := loadSeries{perRank: tc.rows}
			require.InDelta(t, tc.want, l.cv(), 1e-9)
		})
	}
}
