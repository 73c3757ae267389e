package transform

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPassThroughModel(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{name: "rerank", body: `{"model":"bge","query":"q","documents":["a"]}`, want: "bge"},
		{name: "escaped", body: `{"model":"a\u0062c"}`, want: "abc"},
		{name: "model last", body: ` {"input":"x", "model" : "m"} `, want: "m"},
		{name: "no model", body: `{"input":"x"}`},
		{name: "nested model does not count", body: `{"x":{"model":"m"}}`},
		{name: "model not a string", body: `{"model":7}`},
		{name: "empty model", body: `{"model":""}`},
		{name: "control character", body: `{"model":"a\nb"}`},
		{name: "duplicate model", body: `{"model":"a","model":"b"}`},
		{name: "truncated JSON", body: `{"model":"m","input":`},
		{name: "array", body: `["model","m"]`},
		{name: "multipart", body: "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--x--"},
		{name: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, PassThroughModel([]byte(tc.body)))
		})
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"Application/JSON; charset=utf-8":   true,
		"application/vnd.api+json":          true,
		"multipart/form-data; boundary=x":   false,
		"application/x-www-form-urlencoded": false,
		"text/plain":                        false,
		"":                                  false,
	} {
		require.Equal(t, want, IsJSON(ct), ct)
	}
}

// FuzzPassThroughModel: never a panic; a model is returned only for a valid
// JSON object whose one top-level "model" is that string (encoding/json as
// the oracle).
func FuzzPassThroughModel(f *testing.F) {
	for _, s := range []string{`{"model":"m"}`, `{"model":"a\u0062"}`, `{"x":{"model":"m"},"model":"n"}`, `{"model":"m","model":"n"}`, `["model"]`, `{"model":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := PassThroughModel(body)
		if got == "" {
			return
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("model %q from a body encoding/json rejects: %v", got, err)
		}
		var m string
		if err := json.Unmarshal(v["model"], &m); err != nil || m != got {
			t.Fatalf("model %q, encoding/json reads %q (%v)", got, m, err)
		}
	})
}
