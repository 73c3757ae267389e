package strictjson

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '"' {
		return errors.New(`want a duration string such as "100ms"`)
	}
	v, err := time.ParseDuration(string(b[1 : len(b)-1]))
	*d = duration(v)
	return err
}

type target struct {
	Model  string `json:"model"`
	Weight int64  `json:"weight,omitempty"`
}

// UnmarshalJSON defaults Weight to 1, as transform's RewriteTarget does.
func (t *target) UnmarshalJSON(b []byte) error {
	type plain target
	p := plain{Weight: 1}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = target(p)
	return nil
}

type config struct {
	Name     string            `json:"name"`
	Enabled  bool              `json:"enabled"`
	Tokens   uint32            `json:"tokens"`
	Ratio    float64           `json:"ratio"`
	Interval duration          `json:"interval"`
	Targets  []target          `json:"targets"`
	Prio     map[string]int    `json:"prio"`
	Nested   *struct{ X int }  `json:"nested"`
	Labels   map[string]string `json:"labels"`
	//lint:ignore U1000 never set: the test checks an unexported field is not a JSON field
	hidden int
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
		check             func(t *testing.T, c *config)
	}{
		{name: "all fields", in: `{"name":"a","enabled":true,"tokens":7,"ratio":0.5,"interval":"2s","targets":[{"model":"m","weight":2}],"prio":{"batch":-1},"nested":{"X":3}}`,
			check: func(t *testing.T, c *config) {
				require.Equal(t, config{Name: "a", Enabled: true, Tokens: 7, Ratio: 0.5, Interval: duration(2 * time.Second),
					Targets: []target{{"m", 2}}, Prio: map[string]int{"batch": -1}, Nested: &struct{ X int }{3}}, *c)
			}},
		{name: "a struct's UnmarshalJSON runs", in: `{"targets":[{"model":"m"}]}`,
			check: func(t *testing.T, c *config) { require.Equal(t, []target{{"m", 1}}, c.Targets) }},
		{name: "null keeps the default", in: `{"name":null,"targets":null}`},
		{name: "malformed", in: `{"name":`, wantErr: "invalid JSON: unexpected EOF"},
		{name: "trailing data", in: `{} {}`, wantErr: "invalid JSON: data after the top-level value"},
		{name: "not an object", in: `[]`, wantErr: "must be an object"},
		{name: "unknown field lists the known", in: `{"nmae":"a"}`, wantErr: `unknown field "nmae" (known: enabled, interval, labels, name, nested, prio, ratio, targets, tokens)`},
		{name: "wrong case suggests the field", in: `{"Name":"a"}`, wantErr: `unknown field "Name" (did you mean "name"?)`},
		{name: "unexported field is unknown", in: `{"hidden":1}`, wantErr: `unknown field "hidden" (known: enabled, interval, labels, name, nested, prio, ratio, targets, tokens)`},
		{name: "nested unknown has the parent's path", in: `{"targets":[{"model":"m"},{"model":"m","weigth":2}]}`, wantErr: `targets[1]: unknown field "weigth" (known: model, weight)`},
		{name: "string", in: `{"name":1}`, wantErr: "name: must be a string"},
		{name: "bool", in: `{"enabled":"yes"}`, wantErr: "enabled: must be a boolean"},
		{name: "fraction for an integer", in: `{"targets":[{"weight":1.5}]}`, wantErr: "targets[0].weight: must be an integer"},
		{name: "integer out of range", in: `{"targets":[{"weight":9223372036854775808}]}`, wantErr: "targets[0].weight: out of range"},
		{name: "negative unsigned", in: `{"tokens":-1}`, wantErr: "tokens: must be a non-negative integer"},
		{name: "unsigned out of range", in: `{"tokens":4294967296}`, wantErr: "tokens: out of range"},
		{name: "number as string", in: `{"ratio":"0.5"}`, wantErr: "ratio: must be a number"},
		{name: "number out of range", in: `{"ratio":1e400}`, wantErr: "ratio: out of range"},
		{name: "array", in: `{"targets":{"model":"m"}}`, wantErr: "targets: must be an array"},
		{name: "map value path", in: `{"prio":{"batch":"low"}}`, wantErr: `prio["batch"]: must be an integer`},
		{name: "map must be an object", in: `{"labels":[]}`, wantErr: "labels: must be an object"},
		{name: "UnmarshalJSON's error gets the path", in: `{"interval":100}`, wantErr: `interval: want a duration string such as "100ms"`},
		{name: "pointer to struct", in: `{"nested":{"X":"3"}}`, wantErr: "nested.X: must be an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c config
			err := Decode([]byte(tc.in), &c)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, &c)
			}
		})
	}
}
