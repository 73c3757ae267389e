package abi

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// fakeBody is a BodyBuffer that is not the SDK's: BodyChunks must use its
// GetChunks.
type fakeBody struct {
	shared.BodyBuffer
	chunks [][]byte
}

func (b *fakeBody) GetChunks() []shared.UnsafeEnvoyBuffer {
	var out []shared.UnsafeEnvoyBuffer
	for _, c := range b.chunks {
		out = append(out, shared.UnsafeEnvoyBuffer{Ptr: unsafe.SliceData(c), Len: uint64(len(c))})
	}
	return out
}

// sameLayout has the SDK body buffer's fields but another name and package:
// it must not pass for it.
type dymBodyBuffer struct {
	//lint:ignore U1000 read by reflection only
	hostPluginPtr unsafe.Pointer
	//lint:ignore U1000 read by reflection only
	bufferType uint32
}

func TestBodyChunksFallsBackToGetChunks(t *testing.T) {
	b := &fakeBody{chunks: [][]byte{[]byte("ab"), []byte("cde")}}
	dst := make([]shared.UnsafeEnvoyBuffer, 1, 4) // appended to, as the filter reuses it
	got := BodyChunks(b, dst)
	require.Len(t, got, 3)
	require.Equal(t, "ab", string(got[1].ToUnsafeBytes()))
	require.Equal(t, "cde", string(got[2].ToUnsafeBytes()))
	require.Empty(t, BodyChunks(&fakeBody{}, nil))
	require.Nil(t, sdkBodyType.Load(), "a fake is not remembered as the SDK's type")
}

func TestIsSDKBodyChecksNameAndLayout(t *testing.T) {
	require.False(t, isSDKBody(reflect.TypeOf(&dymBodyBuffer{})), "same name and layout, another package")
	require.False(t, isSDKBody(reflect.TypeOf(&fakeBody{})))
	require.False(t, isSDKBody(reflect.TypeOf(dymBodyBuffer{})), "not a pointer")
	require.False(t, isSDKBody(nil))
}
