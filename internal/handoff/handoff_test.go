package handoff

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTable(t *testing.T) {
	type facts struct{ model string }
	tab := New[facts]()
	a := &facts{"a"}
	tokA := tab.Put(7, a)
	tokB := tab.Put(7, &facts{"b"})
	require.NotEqual(t, tokA, tokB)
	for _, tc := range []struct {
		name string
		tok  Token
		conn uint64
		want *facts
	}{
		{"the owner's connection", tokA, 7, a},
		{"another connection", tokA, 8, nil},
		{"a token never issued", Token{1, 2, 3}, 7, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Same(t, tc.want, tab.Get(tc.tok, tc.conn))
		})
	}
	a2 := &facts{"a2"}
	require.True(t, tab.Replace(tokA, a2))
	require.Same(t, a2, tab.Get(tokA, 7))
	tab.Delete(tokA)
	tab.Delete(tokA)
	require.Nil(t, tab.Get(tokA, 7))
	require.False(t, tab.Replace(tokA, a2), "a deleted token stays dead")
	require.Equal(t, 1, tab.Len())
	tab.Delete(tokB)
	require.Zero(t, tab.Len())
}

// Tokens are unique, and two tables (two processes) issue unrelated ones.
func TestTokensUniqueAndKeyed(t *testing.T) {
	t1, t2 := New[int](), New[int]()
	seen := map[Token]bool{}
	for i := 0; i < 10000; i++ {
		tok := t1.Put(1, nil)
		require.False(t, seen[tok])
		seen[tok] = true
		require.NotEqual(t, tok, t2.Put(1, nil), "independently seeded")
	}
}

func TestTokenText(t *testing.T) {
	tok := New[int]().Put(1, nil)
	txt := tok.AppendText(nil)
	require.Len(t, txt, TokenLen)
	back, ok := ParseToken(txt)
	require.True(t, ok)
	require.Equal(t, tok, back)
	for _, bad := range []string{"", "12", string(txt) + "0", string(txt[:TokenLen-1]) + "g", "140737488355328"} {
		_, ok := ParseToken([]byte(bad))
		require.False(t, ok, bad)
	}
}

// Workers put, get and delete at once (go test -race).
func TestConcurrentStreams(t *testing.T) {
	tab := New[string]()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				v := fmt.Sprint(w, i)
				tok := tab.Put(uint64(w), &v)
				require.Equal(t, v, *tab.Get(tok, uint64(w)))
				require.Nil(t, tab.Get(tok, uint64(w+1)))
				tab.Delete(tok)
			}
		}(w)
	}
	wg.Wait()
	require.Zero(t, tab.Len())
}

func BenchmarkPutGetDelete(b *testing.B) {
	tab := New[int]()
	v := 1
	var buf [TokenLen]byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tok := tab.Put(3, &v)
		txt := tok.AppendText(buf[:0])
		back, _ := ParseToken(txt)
		if tab.Get(back, 3) == nil {
			b.Fatal("lost")
		}
		tab.Delete(tok)
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add([]byte("00112233445566778899aabbccddeeff"))
	f.Add([]byte("824634330112"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, ok := ParseToken(b)
		if ok {
			require.Len(t, b, TokenLen)
			require.Equal(t, strings.ToLower(string(b)), string(tok.AppendText(nil)))
		}
	})
}
