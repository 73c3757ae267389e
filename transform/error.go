package transform

import (
	"fmt"
	"strconv"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/openaierror"
)

// Error is a reply the filter sends instead of forwarding a request: an HTTP
// status and an OpenAI-style error body. (Statuses are plain numbers: net/http
// would bring the net package, and with it cgo, into the shared library.)
type Error struct {
	Status  int
	Type    string // OpenAI error type, e.g. "invalid_request_error"
	Code    string // machine-readable reason, e.g. "model_not_found"
	Param   string // the request field at fault; empty when none
	Message string // for humans; says what is wrong
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Body returns the OpenAI error body:
//
//	{"error":{"message":"...","type":"...","param":null,"code":"..."}}
func (e *Error) Body() []byte {
	return openaierror.Body(e.Message, e.Type, e.Param, e.Code)
}

const invalidRequest = "invalid_request_error"

func badRequest(code, param, format string, args ...any) *Error {
	return &Error{Status: 400, Type: invalidRequest, Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

// BodyTooLarge is the 413 reply for a request body over limit bytes. The
// module sends it as soon as the buffered body or the content-length exceeds
// the limit.
func BodyTooLarge(limit int64) *Error {
	return &Error{
		Status:  413,
		Type:    invalidRequest,
		Code:    "request_too_large",
		Message: "request body is larger than " + strconv.FormatInt(limit, 10) + " bytes",
	}
}

// BudgetExhausted is the 429 reply for a request whose local token budget is
// spent. Send RetryAfter(retryAfter) in a retry-after header with it.
func BudgetExhausted(retryAfter time.Duration) *Error {
	return &Error{
		Status:  429,
		Type:    "tokens",
		Code:    "rate_limit_exceeded",
		Message: "token budget exhausted; retry in " + RetryAfter(retryAfter) + "s",
	}
}

// RetryAfter formats d as the value of a retry-after header: whole seconds,
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	return strconv.FormatInt(max(int64(s), 1), 10)
}
