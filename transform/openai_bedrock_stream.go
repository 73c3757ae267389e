package transform

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/tidwall/gjson"
)

// maxBedrockMessage bounds one event-stream message held between chunks.
const maxBedrockMessage = 16 << 20

// bedrockStream turns ConverseStream's event stream (AWS's binary framing:
// a prelude with the total and header lengths, headers, a JSON payload, and
// CRCs) into OpenAI chat.completion.chunk events as each message
// completes. Between chunks it holds only the unfinished message. The
// SDK's decoder reads each whole message and checks its CRCs.
type bedrockStream struct {
	t       *bedrockTranslator
	buf     []byte // the unfinished message
	dec     *eventstream.Decoder
	payload []byte // the decoder's payload buffer, reused
	prefix  []byte
	tools   []int // content block index → tool call index + 1
	nTools  int
	stopped bool // messageStop came: the finish chunk went out
	ended   bool // [DONE] or an error went out: the rest is ignored
}

func (s *bedrockStream) init(t *bedrockTranslator) {
	s.t = t
	if s.dec == nil {
		s.dec = eventstream.NewDecoder() // holds no state of a stream: kept
	}
	p := append(s.prefix[:0], `data: {"id":"bedrock","object":"chat.completion.chunk","created":`...)
	p = strconv.AppendInt(p, t.created, 10)
	p = append(p, `,"model":`...)
	p = gjson.AppendJSONString(p, t.model)
	s.prefix = append(p, `,"choices":[{"index":0,"delta":`...)
}

// recycled returns a new bedrockStream with s's buffers (and decoder),
// emptied (and bounded), for the next exchange.
func (s *bedrockStream) recycled() bedrockStream {
	return bedrockStream{buf: kept(s.buf), dec: s.dec, payload: kept(s.payload), prefix: kept(s.prefix), tools: kept(s.tools)}
}

// write appends the translation of chunk to dst.
func (s *bedrockStream) write(dst, b []byte) []byte {
	for len(b) > 0 && !s.ended {
		if len(s.buf) == 0 && len(b) >= 4 {
			// The common case: whole messages in the chunk, read in place.
			n := int(binary.BigEndian.Uint32(b))
			if n <= len(b) {
				if dst = s.message(dst, b[:n]); s.ended {
					return dst
				}
				b = b[n:]
				continue
			}
		}
		need := len(b)
		if len(s.buf)+len(b) >= 4 {
			var head [4]byte
			k := copy(head[:], s.buf)
			copy(head[k:], b)
			n := int(binary.BigEndian.Uint32(head[:]))
			if n < 16 || n > maxBedrockMessage {
				return s.fail(dst, "the Bedrock backend sent an event-stream message of "+strconv.Itoa(n)+" bytes")
			}
			need = min(n-len(s.buf), len(b))
		}
		s.buf = append(s.buf, b[:need]...)
		b = b[need:]
		if len(s.buf) >= 4 && int(binary.BigEndian.Uint32(s.buf)) == len(s.buf) {
			dst = s.message(dst, s.buf)
			s.buf = s.buf[:0]
		}
	}
	return dst
}

// close ends the stream: after messageStop, the usage chunk (when asked
// for and not sent with the metadata) and [DONE]; a stream without one was
// cut, and ends with an error event.
func (s *bedrockStream) close(dst []byte) []byte {
	if s.ended {
		return dst
	}
	if len(s.buf) > 0 || !s.stopped {
		return s.fail(dst, "the Bedrock stream ended before messageStop")
	}
	return s.done(dst)
}

func (s *bedrockStream) done(dst []byte) []byte {
	s.ended = true
	s.buf = kept(s.buf)
	if s.t.includeUsage && s.t.hasUsage {
		dst = append(dst, s.prefix[:bytes.LastIndex(s.prefix, []byte(`[{`))]...)
		dst = append(dst, `[],"usage":`...)
		dst = s.t.appendUsage(dst)
		dst = append(dst, "}\n\n"...)
	}
	return append(dst, "data: [DONE]\n\n"...)
}

// message translates one whole event-stream message.
func (s *bedrockStream) message(dst, raw []byte) []byte {
	if len(raw) < 16 || len(raw) > maxBedrockMessage {
		return s.fail(dst, "the Bedrock backend sent an event-stream message of "+strconv.Itoa(len(raw))+" bytes")
	}
	m, err := s.dec.Decode(bytes.NewReader(raw), s.payload[:0])
	if err != nil {
		return s.fail(dst, "the Bedrock backend sent an event-stream message that cannot be read: "+err.Error())
	}
	if cap(m.Payload) > cap(s.payload) {
		s.payload = m.Payload[:0]
	}
	header := func(name string) string {
		if v, ok := m.Headers.Get(name).(eventstream.StringValue); ok {
			return string(v)
		}
		return ""
	}
	if !gjson.ValidBytes(m.Payload) {
		return s.fail(dst, "the Bedrock backend sent an event whose payload is not JSON")
	}
	p := gjson.Parse(unsafeString(m.Payload)) // not kept past this call
	switch header(":message-type") {
	case "event":
	case "exception", "error":
		kind := header(":exception-type")
		if kind == "" {
			kind = header(":error-code")
		}
		status, ok := bedrockExceptions[kind]
		if !ok {
			status = 500
		}
		e := s.t.TranslateError(status, m.Payload)
		if kind != "" {
			e.Message = kind + ": " + e.Message
		}
		s.ended = true
		s.buf = kept(s.buf)
		return s.errorEvent(dst, e)
	default:
		return dst
	}
	switch header(":event-type") {
	case "messageStart":
		return s.end(append(s.start(dst), `{"role":"assistant","content":""}`...), "null")
	case "contentBlockStart":
		tu := p.Get("start.toolUse")
		if !tu.IsObject() {
			return dst
		}
		i := p.Get("contentBlockIndex").Int()
		if i < 0 || i >= maxToolBlocks {
			return s.fail(dst, "the Bedrock backend sent a toolUse block without a usable index")
		}
		for int64(len(s.tools)) <= i {
			s.tools = append(s.tools, 0)
		}
		s.nTools++
		s.tools[i] = s.nTools
		d := append(s.start(dst), `{"tool_calls":[{"index":`...)
		d = strconv.AppendInt(d, int64(s.nTools-1), 10)
		d = append(d, `,"id":`...)
		d = appendStringOr(d, tu.Get("toolUseId"), "")
		d = append(d, `,"type":"function","function":{"name":`...)
		d = appendStringOr(d, tu.Get("name"), "")
		return s.end(append(d, `,"arguments":""}}]}`...), "null")
	case "contentBlockDelta":
		delta := p.Get("delta")
		if text := delta.Get("text"); text.Type == gjson.String {
			return s.delta(dst, `{"content":`, text.Raw, `}`)
		}
		if text := delta.Get("reasoningContent.text"); text.Type == gjson.String {
			return s.delta(dst, `{"reasoning_content":`, text.Raw, `}`)
		}
		if in := delta.Get("toolUse.input"); in.Type == gjson.String {
			i := p.Get("contentBlockIndex").Int()
			if i < 0 || i >= int64(len(s.tools)) || s.tools[i] == 0 {
				return dst // not a tool block we opened
			}
			d := append(s.start(dst), `{"tool_calls":[{"index":`...)
			d = strconv.AppendInt(d, int64(s.tools[i]-1), 10)
			d = append(append(append(d, `,"function":{"arguments":`...), in.Raw...), `}}]}`...)
			return s.end(d, "null")
		}
	case "messageStop":
		if s.stopped {
			return dst
		}
		s.stopped = true
		d := append(s.start(dst), `{}`...)
		d = append(d, `,"logprobs":null,"finish_reason":`...)
		d = appendBedrockStopReason(d, p.Get("stopReason"))
		return append(d, "}]}\n\n"...)
	case "metadata":
		s.t.noteUsage(p.Get("usage"))
		if s.stopped {
			return s.done(dst) // the last event of a Converse stream
		}
	}
	return dst
}

func (s *bedrockStream) start(dst []byte) []byte { return append(dst, s.prefix...) }

func (s *bedrockStream) end(dst []byte, finish string) []byte {
	dst = append(append(dst, `,"logprobs":null,"finish_reason":`...), finish...)
	return append(dst, "}]}\n\n"...)
}

func (s *bedrockStream) delta(dst []byte, pre, raw, post string) []byte {
	return s.end(append(append(append(s.start(dst), pre...), raw...), post...), "null")
}

func (s *bedrockStream) errorEvent(dst []byte, e *Error) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, e.Body()...)
	return append(dst, "\n\n"...)
}

func (s *bedrockStream) fail(dst []byte, msg string) []byte {
	s.ended = true
	s.buf = kept(s.buf)
	return s.errorEvent(dst, upstreamError(502, msg))
}
