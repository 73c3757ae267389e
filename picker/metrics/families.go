package metrics

import "net/url"

// Families returns the metric families a scrape reads, the ones named.
func (n *Names) Families() []string {
	var out []string
	for _, f := range []string{n.Waiting, n.Running, n.KVUsage, n.KVUsageFallback, n.LoRAInfo, n.CacheConfig} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// FilteredPath returns path asking the server for only the families it
// reads: prometheus_client's exposition (vLLM's, SGLang's and
// TensorRT-LLM's /metrics) answers `?name[]=a&name[]=b` with those
// families alone, a few KB instead of tens (every histogram bucket of a
// vLLM exposition); a server that does not know the parameter ignores it
// and answers everything, which the parser skips as before.
func (n *Names) FilteredPath(path string) string {
	q := url.Values{"name[]": n.Families()}.Encode()
	if q == "" {
		return path
	}
	sep := "?"
	for i := 0; i < len(path); i++ {
		if path[i] == '?' {
			sep = "&"
			break
		}
	}
	return path + sep + q
}
