package transform

import "strconv"

// rewrittenResponse is the response side the translators that rewrite a
// provider's answer (Anthropic, Gemini, Bedrock) share: an error body and
// a JSON answer are held (the answer up to a bound) and translated whole
// at their end; a stream goes through the translator's stream as it
// comes; nothing after the end goes out.
type rewrittenResponse struct {
	status int
	mode   responseMode
	body   []byte // a JSON answer, until its end
	tooBig bool   // the JSON answer went over the bound: dropped
	errBuf errorBuffer
	done   bool
	failed int // the status of the error a whole answer became, 0 for none
	edits  [2]HeaderEdit
}

// recycled returns a new rewrittenResponse with r's buffers, emptied (and
// bounded), for the next exchange.
func (r *rewrittenResponse) recycled() rewrittenResponse {
	return rewrittenResponse{body: kept(r.body), errBuf: errorBuffer{kept(r.errBuf.buf)}}
}

// responseStream is a translator's streamed-answer translation.
type responseStream interface {
	write(dst, chunk []byte) []byte
	close(dst []byte) []byte
}

// wholeTranslation is a translator's translation of a whole answer: the
// JSON one in rewrittenResponse.body (or the error for a tooBig one), and
// an error body.
type wholeTranslation interface {
	translateWhole(dst []byte) []byte
	TranslateError(status int, body []byte) *Error
}

// begin reads the response headers and returns what the client is to see:
// status (errStatus for an error, the provider's mapped to OpenAI's), the
// content type of what the translation writes and no content-length. A
// compressed answer cannot be translated: 502. streamType is the media
// type of the provider's stream; isStream reports it.
func (r *rewrittenResponse) begin(resp UpstreamResponse, who, streamType string, errStatus int) (out TranslatedResponseHeaders, isStream bool, err error) {
	r.status = resp.Status
	out = TranslatedResponseHeaders{Status: resp.Status, Headers: r.edits[:0]}
	switch {
	case !isSuccess(resp.Status):
		r.mode = modeError
		out.Status = errStatus
		out.Headers = append(out.Headers, HeaderEdit{Name: "content-type", Value: "application/json"})
	case !identityEncoding(resp.ContentEncoding):
		return out, false, &Error{Status: 502, Type: "server_error", Code: "upstream_encoding",
			Message: who + " answered with content-encoding " + strconv.Quote(resp.ContentEncoding) + ", which cannot be translated"}
	case mediaType(resp.ContentType) == streamType:
		r.mode = modeStream
		out.Headers = append(out.Headers, HeaderEdit{Name: "content-type", Value: "text/event-stream"})
	default:
		r.mode = modeJSON
		out.Headers = append(out.Headers, HeaderEdit{Name: "content-type", Value: "application/json"})
	}
	// Every translation changes the length.
	out.Headers = append(out.Headers, HeaderEdit{Name: "content-length", Remove: true})
	out.Whole = r.mode != modeStream
	return out, r.mode == modeStream, nil
}

// translate appends the translation of chunk to dst. A JSON answer over
// limit bytes is dropped and translated as an error at its end.
func (r *rewrittenResponse) translate(dst, chunk []byte, endOfStream bool, limit int, s responseStream, w wholeTranslation) []byte {
	if r.done {
		return dst // everything after the end is dropped
	}
	switch r.mode {
	case modeStream:
		dst = s.write(dst, chunk)
		if endOfStream {
			dst = s.close(dst)
		}
	case modeError:
		r.errBuf.add(chunk)
		if endOfStream {
			dst = r.failWhole(dst, w.TranslateError(r.status, r.errBuf.buf))
			r.errBuf.buf = kept(r.errBuf.buf)
		}
	default:
		if len(r.body)+len(chunk) > limit {
			r.tooBig, r.body = true, nil
		}
		if !r.tooBig {
			r.body = append(r.body, chunk...)
		}
		if endOfStream {
			dst = w.translateWhole(dst)
			r.body = kept(r.body)
		}
	}
	r.done = endOfStream
	return dst
}

// failWhole appends e's body as a whole answer's translation and keeps its
// status for finalStatus: an answer the provider sent under a 200 (an error
// object, a blocked prompt, a body of another shape) goes to the client
// with the error's status.
func (r *rewrittenResponse) failWhole(dst []byte, e *Error) []byte {
	r.failed = e.Status
	return append(dst, e.Body()...)
}

// finalStatus is the status the client is to see after a whole answer's
// end: the translated error's, or 0 for the one the headers gave.
func (r *rewrittenResponse) finalStatus() int { return r.failed }
