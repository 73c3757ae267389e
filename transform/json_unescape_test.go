package transform

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// appendStr reads a string member as gjson's Get does, for valid and
// broken escapes alike.
func TestAppendStrMatchesGjson(t *testing.T) {
	for _, raw := range []string{
		`""`, `"plain"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u20ac"`, `"\ud83c\udf01 fog"`, `"\ud83c alone"`, `"\udf01"`,
		`"\u12"`, `"\x"`, `"end\\"`, `"\uzzzz"`, "\"ctl\x01after\"", `"é 🌁"`,
	} {
		t.Run(raw, func(t *testing.T) {
			requireSameStr(t, raw)
		})
	}
}

func requireSameStr(t *testing.T, raw string) {
	t.Helper()
	obj := `{"k":` + raw + `}`
	want := gjson.Get(obj, "k")
	got := rawMember(gjson.Parse(obj), "k")
	if want.Type != gjson.String || got.Type != gjson.String {
		return
	}
	require.Equal(t, want.Str, string(appendStr([]byte("x"), got)[1:]), "%q", raw)
}

func FuzzAppendStr(f *testing.F) {
	for _, s := range []string{`"a\"b"`, `"\ud83c\udf01"`, `"\u00"`, `"\\\\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
			return
		}
		requireSameStr(t, raw)
	})
}
