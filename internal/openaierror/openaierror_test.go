package openaierror

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBody(t *testing.T) {
	tests := []struct {
		name, message, errType, param, code, want string
	}{
		{"no param", `m "q"`, "t", "", "c", `{"error":{"message":"m \"q\"","type":"t","param":null,"code":"c"}}`},
		{"param", "bad", "invalid_request_error", "model", "invalid_value", `{"error":{"message":"bad","type":"invalid_request_error","param":"model","code":"invalid_value"}}`},
		{"control and invalid UTF-8", "a\x00b\xffc\n", "t", "p", "c", `{"error":{"message":"a\u0000b\ufffdc\n","type":"t","param":"p","code":"c"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Body(tt.message, tt.errType, tt.param, tt.code)
			require.True(t, json.Valid(got), "%s", got)
			require.JSONEq(t, tt.want, string(got))
			require.Equal(t, append([]byte("x"), got...), Append([]byte("x"), tt.message, tt.errType, tt.param, tt.code))
		})
	}
}
