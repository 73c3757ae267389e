package awsauth

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unsafe"

	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// The SigV4 signature of a plain request, computed without the SDK's
// net/http request, header maps and string joins (about 50 allocations
// per request): the canonical request, string to sign and HMACs are built
// in stack buffers and the signing key is kept for the day it is valid.
// What it writes is the SDK's, byte for byte (TestSignMatchesTheSDK,
// FuzzSignMatchesTheSDK); a request it cannot tell is plain (a host or
// header value with spaces, a path with a query or a character the SDK
// would encode otherwise) goes through the SDK instead.

const algorithm = "AWS4-HMAC-SHA256"

// dayKey is the signing key of one day (yyyymmdd).
type dayKey struct {
	day [8]byte
	key [32]byte
}

// plainSignable reports whether signPlain signs host, path and the header
// values as the SDK does: the path percent-encoded already (unreserved
// characters, '/' and valid escapes, which the SDK reads back as they are
// and encodes again), no query; the host and values without spaces or
// control characters (the SDK would trim and squeeze spaces) and the host
// without a port.
func plainSignable(host, path string, values ...string) bool {
	if host == "" || len(path) == 0 || path[0] != '/' {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case unreserved(c), c == '/':
		case c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]):
			i += 2
		default:
			return false
		}
	}
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] >= 0x7f {
				return false
			}
		}
	}
	return true
}

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// signPlain signs a request plainSignable accepted.
func (s *Signer) signPlain(host, path, contentType string, body []byte, at time.Time) []transform.HeaderEdit {
	var dateBuf [16]byte
	amzDate := at.UTC().AppendFormat(dateBuf[:0], "20060102T150405Z")
	var payload [64]byte
	sum := sha256.Sum256(body)
	hex.Encode(payload[:], sum[:])
	token := s.creds.SessionToken

	// The canonical request: method, URI (the encoded path encoded again),
	// no query, the signed headers in order, their names, the payload hash.
	var canon [1024]byte
	c := append(canon[:0], "POST\n"...)
	for i := 0; i < len(path); i++ {
		if b := path[i]; unreserved(b) || b == '/' {
			c = append(c, b)
		} else {
			c = append(c, '%', upperHex[b>>4], upperHex[b&15])
		}
	}
	c = append(c, "\n\n"...)
	signed := signedHeaders(len(body) > 0, token != "")
	if len(body) > 0 {
		c = strconv.AppendInt(append(c, "content-length:"...), int64(len(body)), 10)
		c = append(c, '\n')
	}
	c = append(append(append(c, "content-type:"...), contentType...), '\n')
	c = append(append(append(c, "host:"...), host...), '\n')
	c = append(append(append(c, "x-amz-date:"...), amzDate...), '\n')
	if token != "" {
		c = append(append(append(c, "x-amz-security-token:"...), token...), '\n')
	}
	c = append(append(append(append(c, '\n'), signed...), '\n'), payload[:]...)
	canonSum := sha256.Sum256(c)

	// The string to sign: algorithm, date, scope, the canonical request's hash.
	var sts [256]byte
	t := append(append(sts[:0], algorithm+"\n"...), amzDate...)
	t = append(t, '\n')
	scopeStart := len(t)
	t = append(append(append(t, amzDate[:8]...), '/'), s.region...)
	t = append(t, "/"+Service+"/aws4_request\n"...)
	scope := t[scopeStart : len(t)-1]
	t = hex.AppendEncode(t, canonSum[:])

	key := s.signingKey(amzDate[:8])
	sig := hmacSHA256(key[:], t)
	var sigHex [64]byte
	hex.Encode(sigHex[:], sig[:])

	auth := make([]byte, 0, len(algorithm)+len(" Credential=")+len(s.creds.AccessKeyID)+1+len(scope)+len(", SignedHeaders=")+len(signed)+len(", Signature=")+64)
	auth = append(append(auth, algorithm+" Credential="...), s.creds.AccessKeyID...)
	auth = append(append(append(auth, '/'), scope...), ", SignedHeaders="...)
	auth = append(append(append(auth, signed...), ", Signature="...), sigHex[:]...)

	out := make([]transform.HeaderEdit, 2, 3)
	out[0] = transform.HeaderEdit{Name: "authorization", Value: unsafe.String(unsafe.SliceData(auth), len(auth))} // auth is not written again
	out[1] = transform.HeaderEdit{Name: "x-amz-date", Value: string(amzDate)}
	if token != "" {
		out = append(out, transform.HeaderEdit{Name: "x-amz-security-token", Value: token})
	}
	return out
}

const upperHex = "0123456789ABCDEF"

// signedHeaders is the SignedHeaders list of a request with (or without)
// a body and a session token.
func signedHeaders(length, token bool) string {
	switch {
	case length && token:
		return "content-length;content-type;host;x-amz-date;x-amz-security-token"
	case length:
		return "content-length;content-type;host;x-amz-date"
	case token:
		return "content-type;host;x-amz-date;x-amz-security-token"
	}
	return "content-type;host;x-amz-date"
}

// signingKey is the key of day (yyyymmdd), derived once per day from the
// secret: HMAC("AWS4"+secret, day), then the region, the service and
// "aws4_request". Workers share it through an atomic pointer.
func (s *Signer) signingKey(day []byte) [32]byte {
	if k := s.key.Load(); k != nil && string(k.day[:]) == string(day) {
		return k.key
	}
	var seed [128]byte
	k := hmacSHA256(append(append(seed[:0], "AWS4"...), s.creds.SecretAccessKey...), day)
	k = hmacSHA256(k[:], []byte(s.region))
	k = hmacSHA256(k[:], []byte(Service))
	k = hmacSHA256(k[:], []byte("aws4_request"))
	dk := &dayKey{key: k}
	copy(dk.day[:], day)
	s.key.Store(dk)
	return k
}

// hmacSHA256 is HMAC-SHA256 (RFC 2104) of msg, in stack buffers for the
// sizes SigV4 signs (crypto/hmac allocates its hashes).
func hmacSHA256(key, msg []byte) [32]byte {
	const block = 64
	var k [block]byte
	if len(key) > block {
		sum := sha256.Sum256(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	var inner [block + 512]byte
	in := inner[:block]
	for i := range k {
		in[i] = k[i] ^ 0x36
	}
	innerSum := sha256.Sum256(append(in, msg...))
	var outer [block + 32]byte
	for i := range k {
		outer[i] = k[i] ^ 0x5c
	}
	copy(outer[block:], innerSum[:])
	return sha256.Sum256(outer[:])
}
