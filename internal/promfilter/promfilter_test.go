package promfilter

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilter(t *testing.T) {
	expo := []byte("# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na 2\n# HELP ab AB.\nab 3\n# comment\nb_bucket{le=\"1\"} 4\nb 5")
	require.Equal(t, "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na 2\n", string(Filter(expo, []string{"a"})))
	require.Equal(t, "b 5", string(Filter(expo, []string{"b"})), "a bucket's sample name is b_bucket")
	require.Empty(t, Filter(expo, nil))
	q, err := url.ParseQuery("name%5B%5D=vllm%3Aa&name%5B%5D=b&x=1")
	require.NoError(t, err)
	require.Equal(t, []string{"vllm:a", "b"}, Names(q))
}
