package wsframe

import (
	"encoding/binary"
	"math/bits"
)

// mask XORs b in place with key, starting at byte pos of the key, and
// returns the key position for the byte after b. Masking and unmasking are
// the same operation.
func mask(b []byte, key [4]byte, pos int) int {
	next := (pos + len(b)) & 3
	k := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*(pos&3))
	k64 := uint64(k)<<32 | uint64(k)
	for len(b) >= 32 {
		v0 := binary.LittleEndian.Uint64(b[0:8])
		v1 := binary.LittleEndian.Uint64(b[8:16])
		v2 := binary.LittleEndian.Uint64(b[16:24])
		v3 := binary.LittleEndian.Uint64(b[24:32])
		binary.LittleEndian.PutUint64(b[0:8], v0^k64)
		binary.LittleEndian.PutUint64(b[8:16], v1^k64)
		binary.LittleEndian.PutUint64(b[16:24], v2^k64)
		binary.LittleEndian.PutUint64(b[24:32], v3^k64)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(k)
		k = bits.RotateLeft32(k, -8)
	}
	return next
}
