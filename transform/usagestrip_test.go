package transform

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// stripChunks runs body through a stripper in the given chunks and returns
// what the client gets.
func stripChunks(chunks ...[]byte) ([]byte, int) {
	s := NewUsageChunkStripper()
	var out []byte
	for _, c := range chunks {
		before := len(out)
		var changed bool
		out, changed = s.Write(out, c)
		if !changed && !bytes.Equal(out[before:], c) {
			panic("unchanged output differs from its chunk")
		}
	}
	out, _ = s.Flush(out)
	return out, s.Dropped()
}

const (
	usageLine    = `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
	contentEvent = `data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi \"usage\""}}]}`
)

func TestUsageChunkStripper(t *testing.T) {
	tests := []struct {
		name, in, want string
		dropped        int
	}{
		{"LF", contentEvent + "\n\n" + usageLine + "\n\ndata: [DONE]\n\n",
			contentEvent + "\n\ndata: [DONE]\n\n", 1},
		{"CRLF", contentEvent + "\r\n\r\n" + usageLine + "\r\n\r\ndata: [DONE]\r\n\r\n",
			contentEvent + "\r\n\r\ndata: [DONE]\r\n\r\n", 1},
		{"CR", contentEvent + "\r\r" + usageLine + "\r\rdata: [DONE]\r\r",
			contentEvent + "\r\rdata: [DONE]\r\r", 1},
		{"no space, spaces in JSON", "data:{ \"choices\" : [ ] , \"usage\" : {\"total_tokens\":1} }\n\ndata: [DONE]\n\n",
			"data: [DONE]\n\n", 1},
		{"no choices key", "data: {\"usage\":{\"total_tokens\":1}}\n\n", "", 1},
		{"last line unterminated", contentEvent + "\n\n" + usageLine, contentEvent + "\n\n", 1},
		{"usage on a content chunk stays (continuous usage)", `data: {"choices":[{"delta":{"content":"a"}}],"usage":{"total_tokens":1}}` + "\n\n",
			`data: {"choices":[{"delta":{"content":"a"}}],"usage":{"total_tokens":1}}` + "\n\n", 0},
		{"null usage stays", "data: {\"choices\":[],\"usage\":null}\n\n", "data: {\"choices\":[],\"usage\":null}\n\n", 0},
		{"not JSON stays", "data: {\"usage\":{}\n\n", "data: {\"usage\":{}\n\n", 0},
		{"not a data line", "id: {\"choices\":[],\"usage\":{}}\n\n", "id: {\"choices\":[],\"usage\":{}}\n\n", 0},
		{"comments and events stay", ": keep\nevent: x\n" + contentEvent + "\n\n", ": keep\nevent: x\n" + contentEvent + "\n\n", 0},
		{"only the blank line right after goes", usageLine + "\n\n\n" + contentEvent + "\n\n", "\n" + contentEvent + "\n\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			out, n := stripChunks(in)
			require.Equal(t, tt.want, string(out))
			require.Equal(t, tt.dropped, n)
			// Every pair of split points gives the same bytes.
			for i := 0; i <= len(in); i++ {
				for j := i; j <= len(in); j++ {
					out, n := stripChunks(in[:i], in[i:j], in[j:])
					require.Equal(t, tt.want, string(out), "splits at %d, %d", i, j)
					require.Equal(t, tt.dropped, n)
				}
			}
			out, _ = stripChunks(bytesOf(in)...)
			require.Equal(t, tt.want, string(out), "byte by byte")
		})
	}
}

// Real streams: the simulator's usage chunk goes, everything else is kept
// byte for byte, and the stream without usage is untouched.
func TestUsageChunkStripperFixtures(t *testing.T) {
	for _, file := range []string{"sim/chat_stream.sse", "sim/completions_stream.sse", "sim/chat_stream_nousage.sse", "openai/chat_stream_multibyte.sse"} {
		t.Run(file, func(t *testing.T) {
			body := readFixture(t, file)
			out, n := stripChunks(body)
			var want []string
			for ev := range strings.SplitSeq(string(body), "\n\n") {
				if !strings.Contains(ev, `"choices":[]`) {
					want = append(want, ev)
				}
			}
			require.Equal(t, strings.Join(want, "\n\n"), string(out))
			require.Equal(t, strings.Count(string(body), `"choices":[]`), n)
			for i := range body {
				o, _ := stripChunks(body[:i], body[i:])
				require.Equal(t, out, o, "split at %d", i)
			}
			// What is left carries no usage for the meter: the chunk is gone.
			if n > 0 {
				require.False(t, meterChunks(EndpointChatCompletions, "text/event-stream", "", out).HasUsage)
			}
		})
	}
}

// A line too long to be a usage chunk passes as it comes: only
// maxHeldLine bytes are ever held.
func TestUsageChunkStripperHoldsOnlyAShortLine(t *testing.T) {
	s := NewUsageChunkStripper()
	long := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 3*maxHeldLine))
	var out []byte
	for off := 0; off < len(long); off += 1000 {
		out, _ = s.Write(out, long[off:min(off+1000, len(long))])
		require.LessOrEqual(t, len(s.held), maxHeldLine)
	}
	require.Greater(t, len(out), 2*maxHeldLine, "passed on before the line ended")
	out, _ = s.Write(out, []byte("\"}}]}\n\n"+usageLine+"\n\n"))
	out, _ = s.Flush(out)
	require.Equal(t, string(long)+"\"}}]}\n\n", string(out))
	require.Equal(t, 1, s.Dropped())
}

func FuzzUsageChunkStripper(f *testing.F) {
	f.Add([]byte(contentEvent+"\r\n\r\n"+usageLine+"\r\rdata: [DONE]\n\n"), uint16(3), uint16(40))
	f.Fuzz(func(t *testing.T, body []byte, a, b uint16) {
		i, j := min(int(a), len(body)), min(int(b), len(body))
		if i > j {
			i, j = j, i
		}
		whole, n := stripChunks(body)
		split, m := stripChunks(body[:i], body[i:j], body[j:])
		require.Equal(t, string(whole), string(split))
		require.Equal(t, n, m)
		if n == 0 {
			require.Equal(t, string(body), string(whole), "nothing dropped: the bytes are unchanged")
		}
		require.LessOrEqual(t, len(whole), len(body))
	})
}
