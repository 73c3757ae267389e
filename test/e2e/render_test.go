package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/googletoken/googletokentest"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/envoyconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/test/fakeprovider"
)

// The scenarios' bootstraps are rendered by the image's own renderer
// (build/inferencepool-config, README.md "The image"), so the real-Envoy
// suite runs the bootstrap operators run; a scenario adds only what a test
// needs to observe or inject (an access log of the cost metadata, a filter
// that turns a request header into the subset hint).

// endpointHeader names the server that answered (%UPSTREAM_REMOTE_ADDRESS%).
const endpointHeader = "x-inferencepool-endpoint"

// subsetHintHeader is the request header the subset scenario's
// header_to_metadata filter turns into envoy.lb.subset_hint metadata, as a
// filter before ours would set it.
const subsetHintHeader = "x-e2e-subset-hint"

// fastScrape is the ABI suite's pickerConfig scrape: tests see load quickly.
var fastScrape = map[string]any{"interval": "50ms", "timeout": "500ms", "staleAfter": "1s"}

// scenario is one real-Envoy setup.
type scenario struct {
	router    map[string]any   // ai_router's filter_config (nil: {})
	pools     []map[string]any // the renderer's pools (name, servers, model, picker)
	accessLog *accessLog
	// subsetHint adds the header_to_metadata filter before ai_router.
	subsetHint bool
	// routeNames names the routes e2e-route-0, -1... (CEL's route_name).
	routeNames bool
}

// accessLog writes one JSON line per request to path with these fields
// (Envoy substitution formats).
type accessLog struct {
	path   string
	fields map[string]string
}

// pool is a renderer pool named "pool" on servers, scraped fast, with more
// picker fields.
func pool(servers []string, picker map[string]any) map[string]any {
	p := map[string]any{"scrape": fastScrape}
	for k, v := range picker {
		p[k] = v
	}
	return map[string]any{"name": "pool", "servers": servers, "picker": p}
}

var rendererOnce struct {
	sync.Once
	path string
	err  error
}

// renderer builds build/inferencepool-config once into dist/e2e.
func renderer(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	rendererOnce.Do(func() {
		out := filepath.Join(root, "dist", "e2e", "inferencepool-config")
		cmd := exec.Command("go", "build", "-o", out, "./build/inferencepool-config")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			rendererOnce.err = fmt.Errorf("building inferencepool-config: %v\n%s", err, b)
			return
		}
		rendererOnce.path = out
	})
	require.NoError(t, rendererOnce.err)
	return rendererOnce.path
}

// bootstrap renders s for Envoy on listen, its admin on admin.
func (s scenario) bootstrap(t *testing.T, listen, admin int) []byte {
	t.Helper()
	router := s.router
	if router == nil {
		router = map[string]any{}
	}
	cfg, err := json.Marshal(map[string]any{
		"listen":         fmt.Sprintf("127.0.0.1:%d", listen),
		"admin":          fmt.Sprintf("127.0.0.1:%d", admin),
		"endpointHeader": endpointHeader,
		"aiRouter":       router,
		"pools":          s.pools,
	})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "inferencepool.json")
	require.NoError(t, os.WriteFile(file, cfg, 0o644))
	cmd := exec.Command(renderer(t), "-out", "-")
	// Only the config file: the test's own INFERENCEPOOL_* must not leak in.
	cmd.Env = []string{"INFERENCEPOOL_CONFIG=" + file}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "inferencepool-config: %s", stderr.String())
	if s.accessLog == nil && !s.subsetHint && !s.routeNames {
		return stdout.Bytes()
	}

	var b map[string]any
	require.NoError(t, yaml.Unmarshal(stdout.Bytes(), &b))
	hcm := dig(t, b, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
	if l := s.accessLog; l != nil {
		hcm["access_log"] = []any{map[string]any{"name": "envoy.access_loggers.file", "typed_config": map[string]any{
			"@type":      "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
			"path":       l.path,
			"log_format": map[string]any{"json_format": l.fields},
		}}}
	}
	if s.routeNames {
		routes := dig(t, hcm, "route_config", "virtual_hosts", 0, "routes").([]any)
		for i, r := range routes {
			r.(map[string]any)["name"] = fmt.Sprintf("e2e-route-%d", i)
		}
	}
	if s.subsetHint {
		filters := hcm["http_filters"].([]any)
		require.Equal(t, "ai_router", filters[0].(map[string]any)["name"], "the renderer's chain changed; update this test")
		hint := map[string]any{"name": "envoy.filters.http.header_to_metadata", "typed_config": map[string]any{
			"@type": "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config",
			"request_rules": []any{map[string]any{
				"header": subsetHintHeader,
				"on_header_present": map[string]any{"metadata_namespace": "envoy.lb.subset_hint",
					"key": "x-gateway-destination-endpoint-subset", "type": "STRING"},
				"remove": true,
			}},
		}}
		hcm["http_filters"] = append([]any{hint}, filters...)
	}
	out, err := yaml.Marshal(b)
	require.NoError(t, err)
	return out
}

// dig walks maps (string keys) and lists (int keys) of a decoded YAML.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			require.True(t, ok, "%v: not a map at %q", path, k)
			v = m[k]
		case int:
			l, ok := v.([]any)
			require.True(t, ok && k < len(l), "%v: no item %d", path, k)
			v = l[k]
		}
	}
	return v
}

// Every config the suite hands Envoy, checked here without Envoy so that a
// change to the renderer, the README or envoy.yaml that breaks one shows
// up in make test, not only where an Envoy binary exists: each bootstrap is
// parsed into Envoy's v3 protos with every typed config (and every Any
// inside) validated, and each of our filter configs is loaded by the
// library's own parser (test/envoyconfig).
func TestE2EConfigsValidate(t *testing.T) {
	sims := []string{"127.0.0.1:18001", "127.0.0.1:18002", "127.0.0.1:18003"}
	both := []string{"ai_router", "endpoint_picker"}
	log := filepath.Join(t.TempDir(), "access.log")
	const fake, fake2 = "127.0.0.1:18443", "127.0.0.1:18444"
	key := fakeprovider.KeyFile(t, "k")
	sa := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(sa, googletokentest.ServiceAccountKey(t, "http://127.0.0.1:1/token"), 0o600))
	creds := fakeprovider.BedrockCredentialsFile(t)
	google := []string{"ai_router", "ai_upstream", "ai_upstream"}
	oneProvider := []string{"ai_router", "ai_upstream"}
	fallback := []string{"ai_router", "endpoint_picker", "ai_upstream", "ai_upstream"}
	for name, tc := range map[string]struct {
		cfg     []byte
		filters []string
		schemas string // every ai_upstream backend's schema, in order
	}{
		"envoy.yaml":        {envoyConfig(t, 18080, 18081, sims), both, ""},
		"README pools":      {poolsConfig(t, 18080, 18081, sims[0], sims[1]), both, ""},
		"README one filter": {readmePoolsConfig(t, "onefilter-bootstrap", 18080, 18081, sims[0], sims[1]), []string{"ai_router"}, ""},
		"README providers": {providersConfig(t, 18080, 18081, sims[0], "127.0.0.1:18443", keyFile(t)),
			fallback, "openai anthropic anthropic"},
		"costs":                   {costsScenario(sims[0], log).bootstrap(t, 18080, 18081), both, ""},
		"rewrite":                 {rewriteScenario(sims).bootstrap(t, 18080, 18081), both, ""},
		"subset hint":             {subsetScenario(sims).bootstrap(t, 18080, 18081), both, ""},
		"failover":                {failoverScenario(sims).bootstrap(t, 18080, 18081), both, ""},
		"budget":                  {budgetScenario(sims[:1], 1).bootstrap(t, 18080, 18081), both, ""},
		"fail-open":               {failModeScenario(sims[:2], "fail-open").bootstrap(t, 18080, 18081), both, ""},
		"fail-close":              {failModeScenario(sims[:2], "fail-close").bootstrap(t, 18080, 18081), both, ""},
		"gossip":                  {gossipScenario(sims, "127.0.0.1:18090", []string{"127.0.0.1:18090", "127.0.0.1:18091"}).bootstrap(t, 18080, 18081), both, ""},
		"probe":                   {probeScenario(sims).bootstrap(t, 18080, 18081), both, ""},
		"Google":                  {googleConfig(t, 18080, 18081, fake, fake2, key, vertexTokenFile(key)), google, "gemini vertex_ai"},
		"Google, service account": {googleConfig(t, 18080, 18081, fake, fake2, key, vertexServiceAccount(sa)), google, "gemini vertex_ai"},
		"OpenAI-compatible":       {googleConfig(t, 18080, 18081, fake, fake2, key, openAICompatibleGemini()), google, "openai vertex_ai"},
		"Azure OpenAI":            {azureConfig(t, 18080, 18081, fake, key), oneProvider, "azure_openai"},
		"Bedrock":                 {bedrockConfig(t, 18080, 18081, fake, creds), oneProvider, "aws_bedrock"},
		"fallback to Gemini":      {fallbackConfig(t, 18080, 18081, sims[0], fake, geminiFallback(key), "generativelanguage.googleapis.com"), fallback, "openai gemini anthropic"},
		"fallback to Bedrock":     {fallbackConfig(t, 18080, 18081, sims[0], fake, bedrockFallback(creds), "bedrock-runtime.us-east-1.amazonaws.com"), fallback, "openai aws_bedrock anthropic"},
	} {
		t.Run(name, func(t *testing.T) {
			_, filters, err := envoyconfig.ValidateYAML(tc.cfg)
			require.NoError(t, err, "%s", tc.cfg)
			var names, schemas []string
			for _, f := range filters {
				names = append(names, f.FilterName)
				if f.FilterName != "ai_upstream" {
					continue
				}
				var up struct{ Backends []struct{ Schema string } }
				require.NoError(t, json.Unmarshal(f.FilterConfig, &up))
				for _, b := range up.Backends {
					schemas = append(schemas, b.Schema)
				}
			}
			require.Equal(t, tc.filters, names)
			require.Equal(t, tc.schemas, strings.Join(schemas, " "))
		})
	}
}

// A typo in any piece a scenario adds or renders is refused by that check:
// in Envoy's part (the header_to_metadata rule, the access log) and in our
// filter configs.
func TestE2EConfigTyposAreRefused(t *testing.T) {
	sims := []string{"127.0.0.1:18001", "127.0.0.1:18002"}
	subset := string(subsetScenario(sims).bootstrap(t, 18080, 18081))
	costs := string(costsScenario(sims[0], filepath.Join(t.TempDir(), "access.log")).bootstrap(t, 18080, 18081))
	failClose := string(failModeScenario(sims, "fail-close").bootstrap(t, 18080, 18081))
	key := fakeprovider.KeyFile(t, "k")
	azure := string(azureConfig(t, 18080, 18081, sims[1], key))
	toBedrock := string(fallbackConfig(t, 18080, 18081, sims[0], sims[1], bedrockFallback(fakeprovider.BedrockCredentialsFile(t)), "bedrock-runtime.us-east-1.amazonaws.com"))
	google := string(googleConfig(t, 18080, 18081, sims[0], sims[1], key, vertexTokenFile(key)))
	for _, tc := range []struct {
		name, cfg, old, new, want string
	}{
		{"header_to_metadata field", subset, "metadata_namespace: envoy.lb.subset_hint", "metadata_namespac: envoy.lb.subset_hint", "metadata_namespac"},
		{"header_to_metadata rule", subset, "key: x-gateway-destination-endpoint-subset", `key: ""`, "Key"},
		{"access log field", costs, "json_format:", "json_formt:", "json_formt"},
		{"cost type", costs, "type: total", "type: totl", "totl"},
		{"picker value", failClose, "failureMode: fail-close", "failureMode: fail-closed", "failureMode"},
		{"provider schema", azure, "schema: azure_openai", "schema: azure", "backends[0].schema"},
		{"provider field", azure, "apiVersion:", "apiVersio:", "apiVersio"},
		{"Bedrock region", toBedrock, "region: us-east-1", "region: us-east-1.example.com", "backends[1].region"},
		{"TLS field", google, "sni: generativelanguage.googleapis.com", "snii: generativelanguage.googleapis.com", "snii"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, tc.cfg, tc.old, "mutation no longer applies")
			_, _, err := envoyconfig.ValidateYAML([]byte(strings.Replace(tc.cfg, tc.old, tc.new, 1)))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
