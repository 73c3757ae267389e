package harness

// MetadataString is a string in dynamic metadata.
type MetadataString struct {
	Namespace, Key, Value string
}

// SetMetadataString puts a string in the stream's dynamic metadata under
// ns/key, as a filter before ours would.
func (s *Stream) SetMetadataString(ns, key, value string) error {
	return s.do("metastr", b64s(ns), b64s(key), b64s(value))
}
