package picker

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRequestFromBody(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		wantModel  string
		wantPrompt string
		wantErr    error
	}{
		{
			name:       "chat",
			body:       `{"model":"llama","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":5}`,
			wantModel:  "llama",
			wantPrompt: `[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]`,
		},
		{
			name:       "completion",
			body:       `{"prompt":"Once upon a time","model":"sql-lora"}`,
			wantModel:  "sql-lora",
			wantPrompt: `"Once upon a time"`,
		},
		{name: "no prompt", body: `{"model":"m"}`, wantModel: "m"},
		{name: "escaped model", body: `{"model":"a\u0062c"}`, wantModel: "abc"},
		{name: "nested model key does not count", body: `{"x":{"model":"m"}}`, wantErr: ErrNoModel},
		{name: "no model", body: `{"messages":[]}`, wantErr: ErrNoModel},
		{name: "model not a string", body: `{"model":7}`, wantErr: ErrNoModel},
		{name: "empty model", body: `{"model":""}`, wantErr: ErrNoModel},
		{name: "not JSON", body: `hello`, wantErr: ErrNoModel},
		{name: "empty", body: ``, wantErr: ErrNoModel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RequestFromBody([]byte(tc.body))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantModel, r.Model)
			require.Equal(t, tc.wantPrompt, string(r.Prompt))
		})
	}
}

func TestRequestFromBodySharesThePrompt(t *testing.T) {
	body := []byte(`{"model":"m","messages":[1]}`)
	r, err := RequestFromBody(body)
	require.NoError(t, err)
	require.Same(t, &body[bytes.IndexByte(body, '[')], &r.Prompt[0], "the prompt is a view of the body, not a copy")
	require.Equal(t, 3, cap(r.Prompt), "appending to the prompt cannot overwrite the body")
}
