package transform

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// spans records the watched values a walk reports, as text.
type spans struct {
	out  []string
	from int
	buf  []byte
}

func (s *spans) fieldStart(_ field, b []byte, i int) { s.from, s.buf = i, s.buf[:0] }
func (s *spans) fieldEnd(_ field, b []byte, i int) {
	s.out = append(s.out, string(append(s.buf, b[s.from:i+1]...)))
}

// walkChunks walks chunks, carrying a value cut by a chunk's end over to
// the next (as Meter does).
func walkChunks(watch uint8, chunks ...[]byte) (reported []string, ended bool) {
	w := jsonWalker{watch: watch}
	s := &spans{}
	for _, c := range chunks {
		open := w.current != fieldNone
		if open {
			s.from = 0
		}
		w.walk(c, s)
		if w.current != fieldNone {
			s.buf = append(s.buf, c[s.from:]...)
		}
	}
	return s.out, w.ended
}

// The walk skips the containers nested below the keys it reads
// (skipNested), whole in a chunk or cut, and reports the same values and
// ends where the document ends however the chunks split them.
func TestJSONWalkerSkipsNestedContainers(t *testing.T) {
	deep := `{"a":` + strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2) + `,"usage":{"n":1}}`
	watch := fieldModel.bit() | fieldUsage.bit() | fieldResponseModel.bit() | fieldResponseUsage.bit()
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"a skipped member between watched ones", `{"model":"m","choices":[{"message":{"model":"no","usage":{}}}],"usage":{"a":[1,{"b":2}]}}`,
			[]string{`"m"`, `{"a":[1,{"b":2}]}`}},
		{"the response object is walked for its fields", `{"type":"x","response":{"output":[{"model":"no"}],"model":"r","usage":{"t":3}}}`,
			[]string{`"r"`, `{"t":3}`}},
		{"an invalid member is skipped as a valid one", `{"x":{"a":01,"model":"no"},"model":"m"}`, []string{`"m"`}},
		{"a string with a raw control byte in a member", "{\"x\":[\"a\nb\"],\"usage\":{\"u\":1}}", []string{`{"u":1}`}},
		{"deeper than skipValue goes", deep, []string{`{"n":1}`}},
		{"a top-level array's elements", `[{"model":"no"},{"usage":{}}]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := []byte(tc.doc)
			whole, ended := walkChunks(watch, doc)
			require.Equal(t, tc.want, whole)
			require.True(t, ended)
			bytewise, ended := walkChunks(watch, bytesOf(doc)...)
			require.Equal(t, tc.want, bytewise, "a byte at a time: nothing is ever whole in a chunk")
			require.True(t, ended)
			for cut := 1; cut < len(doc); cut += 7 {
				got, _ := walkChunks(watch, doc[:cut], doc[cut:])
				require.Equal(t, tc.want, got, "cut at %d", cut)
			}
		})
	}
}
