package transform

import "strings"

// mediaType is the lower-cased media type of a content-type header value,
// parameters dropped. Unlike mime.ParseMediaType it does not allocate for
// the common, already lower-case values, and it accepts what it does not
// understand as an opaque type rather than failing.
func mediaType(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.ToLower(strings.TrimSpace(contentType))
}
