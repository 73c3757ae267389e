package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// The Grafana dashboard (build/grafana/inferencepool.json) queries only stats
// the shipped library defines, under the names Envoy's /stats/prometheus
// gives them. The defined stats come from the real .so: abihost creates every
// filter config as Envoy does and reports each metric the module defined.
func TestDashboardQueriesDefinedStats(t *testing.T) {
	defs := libraryMetricDefs(t)
	dash := loadDashboard(t, "../build/grafana/inferencepool.json")
	require.NotEmpty(t, dash.queries())

	// Envoy's three spellings (README.md, Stats): the default namespace, a
	// configured metrics_namespace, and the legacy stripped form.
	for _, naming := range []harness.PromNaming{
		{Namespace: "dynamicmodulescustom"},
		{Namespace: "inferencepool"},
		{Namespace: "dynamicmodulescustom", Strip: true},
	} {
		name := naming.Prefix()
		if naming.Strip {
			name = "stripped"
		}
		t.Run(name, func(t *testing.T) {
			known := naming.Series(defs)
			used, problems := dash.check(naming.Prefix(), known)
			require.Empty(t, problems)
			// Every filter has panels, and the dashboard is not one query.
			for _, want := range []string{"gen_ai_client_token_usage_sum", "gen_ai_server_time_to_first_token_bucket",
				"endpoint_picker_picks", "endpoint_picker_sheds", "endpoint_picker_scrape_errors",
				"endpoint_picker_pick_duration_us_bucket", "ai_upstream_panics"} {
				require.Contains(t, used, naming.Prefix()+want)
			}
			var unused []string
			for name := range known {
				if !used[name] && !strings.HasSuffix(name, "_count") && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_bucket") {
					unused = append(unused, name)
				}
			}
			sort.Strings(unused)
			t.Logf("defined but on no panel: %v", unused)
		})
	}
}

// The check fails for what a dashboard gets wrong: a name nobody defines,
// Envoy's stat name instead of its Prometheus name, a label the metric does
// not have, a missing prefix, an unknown Grafana variable.
func TestDashboardCheckRefusesUnknownNames(t *testing.T) {
	defs := libraryMetricDefs(t)
	naming := harness.PromNaming{Namespace: "dynamicmodulescustom"}
	known := naming.Series(defs)
	for _, tc := range []struct{ name, expr, want string }{
		{"defined", `sum by (pool) (rate(${prefix}endpoint_picker_picks{pool=~"$pool"}[$__rate_interval]))`, ""},
		{"unknown name", `sum(rate(${prefix}endpoint_picker_pickz[5m]))`, `"envoy_dynamicmodulescustom_endpoint_picker_pickz" is not a metric`},
		{"stat name, not its Prometheus name", `rate(${prefix}gen_ai.client.token.usage_sum[5m])`, `not a metric`},
		{"no prefix", `rate(endpoint_picker_sheds[5m])`, `"endpoint_picker_sheds" is not a metric`},
		{"histogram queried as a counter", `rate(${prefix}endpoint_picker_pick_duration_us[5m])`, `not a metric`},
		{"counter queried as a histogram", `rate(${prefix}endpoint_picker_picks_bucket[5m])`, `not a metric`},
		{"label the metric lacks", `sum by (model) (rate(${prefix}endpoint_picker_picks[5m]))`, `label "model"`},
		{"dotted tag name", `sum by (gen_ai.token.type) (rate(${prefix}gen_ai_client_token_usage_sum[5m]))`, `label "gen_ai.token.type"`},
		{"matcher on a missing label", `rate(${prefix}endpoint_picker_sheds{endpoint="x"}[5m])`, `label "endpoint"`},
		{"le without a bucket", `histogram_quantile(0.9, sum by (le) (rate(${prefix}endpoint_picker_picks[5m])))`, `label "le"`},
		{"unknown variable", `sum(rate(${prefix}endpoint_picker_picks[5m])) * $nope`, `"$nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dashboard{Panels: []dashPanel{{Title: "p", Targets: []dashTarget{{Expr: tc.expr}}}}}
			_, problems := d.check(naming.Prefix(), known)
			if tc.want == "" {
				require.Empty(t, problems)
				return
			}
			require.NotEmpty(t, problems)
			require.Contains(t, strings.Join(problems, "\n"), tc.want)
		})
	}
}

func TestPromQLSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr           string
		metrics, names []string
	}{
		{`up`, []string{"up"}, nil},
		{`sum by (le, pool) (rate(a_bucket{pool=~"x|y", le!="1"}[5m]))`, []string{"a_bucket"}, []string{"le", "pool", "pool", "le"}},
		{`sum(rate(a[5m])) by (job) / on(job) group_left(inst) b offset 5m`, []string{"a", "b"}, []string{"job", "job", "inst"}},
		{`histogram_quantile(0.9, x) / 1e6 + 2.5`, []string{"x"}, nil},
		{`{__name__="via_name", job="j"}`, []string{"via_name"}, []string{"job"}},
		{`topk(3, c{a="}{by (nope)"}) and d unless e or f`, []string{"c", "d", "e", "f"}, []string{"a"}},
		{`count_values("v", g) - sum without (i) (h)`, []string{"g", "h"}, []string{"i"}},
		{`max_over_time(m[1h:5m]) > bool 0`, []string{"m"}, nil},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			metrics, labels, err := promqlSelectors(tc.expr)
			require.NoError(t, err)
			require.Equal(t, tc.metrics, metrics)
			require.Equal(t, tc.names, labels)
		})
	}
	for _, bad := range []string{`rate(a[5m]`, `a{b="c}`, `$x + a`, `a{b}`} {
		_, _, err := promqlSelectors(bad)
		require.Error(t, err, bad)
	}
}

// libraryMetricDefs loads the production library in abihost with every filter
// (envoy.yaml's chain, then ai_upstream) and returns what they defined.
func libraryMetricDefs(t *testing.T) []harness.MetricDef {
	t.Helper()
	h := harness.Start(t, harness.Options{Lib: harness.ProductionLib(t)})
	defs := h.MustConfigure(harness.EnvoyChain(t))
	defs = append(defs, h.MustConfigure(harness.Chain{{Name: "ai_upstream", Config: []byte(`{"backends":[{"name":"pool","schema":"openai"}]}`)}})...)
	filters := map[string]bool{}
	for _, d := range defs {
		filters[d.Filter] = true
	}
	require.Equal(t, map[string]bool{"ai_router": true, "endpoint_picker": true, "ai_upstream": true}, filters)
	return defs
}

type dashboard struct {
	Title      string      `json:"title"`
	UID        string      `json:"uid"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type dashPanel struct {
	ID      int          `json:"id"`
	Type    string       `json:"type"`
	Title   string       `json:"title"`
	Targets []dashTarget `json:"targets"`
	Panels  []dashPanel  `json:"panels"` // a collapsed row's panels
}

type dashTarget struct {
	Expr string `json:"expr"`
}

func loadDashboard(t *testing.T, path string) *dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.FromSlash(path))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.UID)
	ids := map[int]bool{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			require.False(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			if p.Type != "row" {
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return &d
}

// queries returns every PromQL expression of the dashboard: each panel's
// targets and each query variable's query, keyed by where it is.
func (d *dashboard) queries() map[string]string {
	out := map[string]string{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				out[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query) // the older plain-string form
		}
		// label_values(metric, label): the metric and the label are checked
		// as the selector metric{label=""}.
		if m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(q.Query); m != nil {
			q.Query = fmt.Sprintf(`%s{%s=""}`, m[1], m[2])
		}
		out["variable "+v.Name] = q.Query
	}
	return out
}

// Grafana's variables: the prefix is what the test checks; the others are
// label values (inside strings), ranges (inside brackets) or numbers.
var grafanaNumbers = regexp.MustCompile(`\$(input_price|output_price)\b`)

// check returns the series the dashboard uses and every problem: a name not
// in known, a label the expression's metrics lack.
func (d *dashboard) check(prefix string, known map[string]map[string]bool) (map[string]bool, []string) {
	used := map[string]bool{}
	var problems []string
	for where, expr := range d.queries() {
		e := strings.ReplaceAll(expr, "${prefix}", prefix)
		e = grafanaNumbers.ReplaceAllString(e, "1")
		metrics, labels, err := promqlSelectors(e)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		have := map[string]bool{}
		for _, m := range metrics {
			ls, ok := known[m]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %q is not a metric the library defines", where, m))
				continue
			}
			used[m] = true
			for l := range ls {
				have[l] = true
			}
		}
		for _, l := range labels {
			if !have[l] {
				problems = append(problems, fmt.Sprintf("%s: label %q is on none of its metrics", where, l))
			}
		}
	}
	sort.Strings(problems)
	return used, problems
}

// PromQL words that are not metric names.
var promqlWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "atan2": true,
}

// Words followed by a parenthesized list of label names.
var promqlLabelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlSelectors returns, in order, the metric names and the label names
// (in matchers and grouping lists) of a PromQL expression. Enough PromQL for
// dashboards: strings, matchers, ranges and subqueries, grouping modifiers,
// numbers, functions and operators.
func promqlSelectors(expr string) (metrics, labels []string, err error) {
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.ContainsRune(" \t\r\n", rune(s[i])) {
			i++
		}
	}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	ident := func() string {
		j := i
		for i < len(s) && isIdent(s[i]) {
			i++
		}
		return s[j:i]
	}
	str := func() (string, error) {
		q := s[i]
		i++
		var b strings.Builder
		for i < len(s) && s[i] != q {
			if s[i] == '\\' && q != '`' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
			i++
		}
		if i >= len(s) {
			return "", fmt.Errorf("unterminated string in %q", expr)
		}
		i++
		return b.String(), nil
	}
	// matchers parses {name op "value", ...}; __name__ names a metric.
	matchers := func() error {
		i++ // {
		for {
			skipSpace()
			if i < len(s) && s[i] == '}' {
				i++
				return nil
			}
			if i >= len(s) || !isIdentStart(s[i]) {
				return fmt.Errorf("bad label matcher in %q", expr)
			}
			name := ident()
			skipSpace()
			if i < len(s) && (s[i] == '=' || s[i] == '!') {
				i++
				if i < len(s) && (s[i] == '=' || s[i] == '~') {
					i++
				}
			} else {
				return fmt.Errorf("label %q without an operator in %q", name, expr)
			}
			skipSpace()
			if i >= len(s) || !strings.ContainsRune("\"'`", rune(s[i])) {
				return fmt.Errorf("label %q without a string value in %q", name, expr)
			}
			v, err := str()
			if err != nil {
				return err
			}
			if name == "__name__" {
				metrics = append(metrics, v)
			} else {
				labels = append(labels, name)
			}
			skipSpace()
			if i < len(s) && s[i] == ',' {
				i++
			}
		}
	}
	depth := 0
	for {
		skipSpace()
		if i >= len(s) {
			break
		}
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if _, err := str(); err != nil {
				return nil, nil, err
			}
		case c == '{':
			if err := matchers(); err != nil {
				return nil, nil, err
			}
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unterminated range in %q", expr)
			}
			i += j + 1
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			i++
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			w := ident()
			skipSpace()
			next := byte(0)
			if i < len(s) {
				next = s[i]
			}
			switch {
			case promqlLabelLists[w] && next == '(':
				j := strings.IndexByte(s[i:], ')')
				if j < 0 {
					return nil, nil, fmt.Errorf("unterminated %s list in %q", w, expr)
				}
				for _, l := range strings.Split(s[i+1:i+j], ",") {
					if l = strings.TrimSpace(l); l != "" {
						labels = append(labels, l)
					}
				}
				i += j + 1
			case promqlWords[w] || promqlLabelLists[w]:
			case next == '(':
				// a function call
			default:
				metrics = append(metrics, w)
			}
		case c == '$':
			return nil, nil, fmt.Errorf("unknown Grafana variable %q in %q", "$"+regexp.MustCompile(`^\$\{?(\w*)`).FindStringSubmatch(s[i:])[1], expr)
		case strings.ContainsRune("+-*/%^=!<>,", rune(c)):
			i++
		default:
			return nil, nil, fmt.Errorf("unexpected %q in %q", c, expr)
		}
	}
	if depth != 0 {
		return nil, nil, fmt.Errorf("unbalanced parentheses in %q", expr)
	}
	return metrics, labels, nil
}

// The PromQL reader answers or refuses any text; it never panics.
func FuzzPromQLSelectors(f *testing.F) {
	for _, s := range []string{`sum by (le) (rate(a_bucket{x=~"y"}[5m]))`, `a{__name__="b"} / on(c) group_left() d`, `$x`, `"`, `{a=`, `by (`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		_, _, _ = promqlSelectors(expr)
	})
}
