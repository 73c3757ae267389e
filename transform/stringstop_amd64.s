//go:build amd64 && !purego

#include "textflag.h"

// stopTable[c&15] is the one byte below 0x80 with that low nibble that
// ends plain string text and is not a control character ('"', '\\'); 0xff
// (no byte below 0x80) for the other nibbles. VPSHUFB gives 0 for bytes
// from 0x80, which are not 0.
DATA stopTable<>+0x00(SB)/8, $0xffffffffff22ffff
DATA stopTable<>+0x08(SB)/8, $0xffffff5cffffffff
GLOBL stopTable<>(SB), RODATA|NOPTR, $16

// STOPMASK32 sets bit k of AX when byte k of the 32 at addr stops (Y1,
// Y3 and Y0 as set up below; Y4, Y6 and Y7 are scratch).
#define STOPMASK32(addr) \
	VMOVDQU   addr, Y4; \
	VPSUBUSB  Y3, Y4, Y6; \
	VPSHUFB   Y4, Y1, Y7; \
	VPXOR     Y4, Y7, Y7; \
	VPMINUB   Y6, Y7, Y6; \
	VPCMPEQB  Y0, Y6, Y6; \
	VPMOVMSKB Y6, AX

// func indexStopAVX2(b []byte, i int) int
//
// The index of the first byte of b[i:] that is '"', '\\' or a control
// character (< 0x20), or len(b): 64 bytes a step, then 32, then the last 32
// bytes of b again (len(b) >= 32) with the marks before i dropped. A byte c
// stops when min(c -sat 0x1f, c ^ stopTable[c&15]) is 0.
TEXT ·indexStopAVX2(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX
	MOVQ i+24(FP), DI
	LEAQ (SI)(BX*1), R8 // end
	ADDQ SI, DI         // p
	VBROADCASTI128 stopTable<>(SB), Y1
	MOVL $0x1f, AX
	MOVQ AX, X3
	VPBROADCASTB X3, Y3
	VPXOR Y0, Y0, Y0
	LEAQ -64(R8), R9
	CMPQ DI, R9
	JHI  tail32

loop64:
	VMOVDQU  (DI), Y4
	VMOVDQU  32(DI), Y5
	VPSUBUSB Y3, Y4, Y6
	VPSHUFB  Y4, Y1, Y7
	VPXOR    Y4, Y7, Y7
	VPMINUB  Y6, Y7, Y6 // 0 where the first 32 bytes stop
	VPSUBUSB Y3, Y5, Y8
	VPSHUFB  Y5, Y1, Y9
	VPXOR    Y5, Y9, Y9
	VPMINUB  Y8, Y9, Y8 // the next 32
	VPMINUB  Y6, Y8, Y9
	VPCMPEQB Y0, Y9, Y9
	VPTEST   Y9, Y9
	JNZ      found64
	ADDQ     $64, DI
	CMPQ     DI, R9
	JLS      loop64
	JMP      tail32

found64:
	VPCMPEQB  Y0, Y6, Y6
	VPMOVMSKB Y6, AX
	TESTL     AX, AX
	JNZ       found
	VPCMPEQB  Y0, Y8, Y8
	VPMOVMSKB Y8, AX
	ADDQ      $32, DI
	JMP       found

tail32:
	LEAQ      -32(R8), R9
	CMPQ      DI, R9
	JHI       last
	STOPMASK32((DI))
	TESTL     AX, AX
	JNZ       found
	ADDQ      $32, DI

last:
	CMPQ      DI, R8
	JEQ       none
	STOPMASK32((R9))
	MOVQ      DI, CX
	SUBQ      R9, CX // 1..31 bytes of the block are before p
	SHRL      CX, AX
	TESTL     AX, AX
	JZ        none

found:
	BSFL AX, AX
	SUBQ SI, DI
	ADDQ DI, AX
	VZEROUPPER
	MOVQ AX, ret+32(FP)
	RET

none:
	VZEROUPPER
	MOVQ BX, ret+32(FP)
	RET
