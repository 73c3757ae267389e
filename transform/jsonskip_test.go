package transform

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// skipValueCases are JSON values, valid and not, at the edges skipValue
// must check as scanNested does.
var skipValueCases = []string{
	`{}`, `[]`, `""`, `0`, `-1.5e+3`, `true`, `false`, `null`,
	` {"a":[1,{"b":"c\"\u00e9"}],"d":{}} `,
	`{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `{1:2}`, `[1 2]`, `{"a":1]`, `[1}`,
	`"unterminated`, "\"ctl\x01\"", `"\x"`, `"\u12"`, `01`, `-`, `1.`, `1e`, `tru`, `nul`,
	`{"a":1}x`, `[`, `{`, `{"a":[`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
}

func TestSkipValueChecksAsScanNested(t *testing.T) {
	for _, tc := range skipValueCases {
		name := tc
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			requireSkipValueAsScan(t, []byte(tc))
		})
	}
}

// requireSkipValueAsScan checks skipValue on b against scanTopLevel: the
// value it skips is valid, it fails where the document is invalid before
// the value's end, and nested in a container the depth limit holds the
// same.
func requireSkipValueAsScan(t *testing.T, b []byte) {
	end := skipValue(b, 0, 0)
	valid := scanTopLevel(b, nil)
	require.Equal(t, valid, end >= 0 && skipSpace(b, end) == len(b), "whole document")
	if end >= 0 {
		require.True(t, scanTopLevel(b[:end], nil), "the skipped value")
	}
	// One level down: as the value of a member.
	doc := append(append([]byte(`{"k":`), b...), '}')
	end = skipValue(doc, 5, 1)
	valid = scanTopLevel(doc, nil)
	require.Equal(t, valid, end >= 0 && string(doc[skipSpace(doc, end):]) == "}", "as a member")
}

func FuzzSkipValue(f *testing.F) {
	for _, tc := range skipValueCases {
		f.Add([]byte(tc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSkipValueAsScan(t, b)
	})
}
