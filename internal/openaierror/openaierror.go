// Package openaierror renders OpenAI's error body,
// {"error":{"message","type","param","code"}}, the one every local reply of
// the library carries (transform's errors, abi's panic barrier), so clients
// of OpenAI-compatible servers parse ours too. It is plain Go, so both
// transform (which must stay free of the SDK) and abi may import it.
package openaierror

import "github.com/tidwall/gjson"

// Append appends the error body to dst. param is the request field at
// fault; "" renders null. Strings are JSON-escaped (invalid UTF-8 becomes
// U+FFFD), so any client input they echo stays valid JSON.
func Append(dst []byte, message, errType, param, code string) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = gjson.AppendJSONString(dst, message)
	dst = append(dst, `,"type":`...)
	dst = gjson.AppendJSONString(dst, errType)
	dst = append(dst, `,"param":`...)
	if param == "" {
		dst = append(dst, "null"...)
	} else {
		dst = gjson.AppendJSONString(dst, param)
	}
	dst = append(dst, `,"code":`...)
	dst = gjson.AppendJSONString(dst, code)
	return append(dst, "}}"...)
}

// Body is Append to a new buffer.
func Body(message, errType, param, code string) []byte {
	return Append(make([]byte, 0, 80+len(message)+len(errType)+len(param)+len(code)), message, errType, param, code)
}
