package wsframe

import (
	"bytes"
	"compress/flate"
	"testing"
	"unsafe"
)

func deflateMessage(t *testing.T, w *flate.Writer, buf *bytes.Buffer, msg []byte) []byte {
	t.Helper()
	buf.Reset()
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte(deflateTail)))
}

func serverFrame(rsv byte, payload []byte) []byte {
	b := []byte{0x81 | rsv, 126, byte(len(payload) >> 8), byte(len(payload))}
	return append(b, payload...)
}

// TestIdleMemory checks that a parser between messages holds no buffers but
// the context takeover window, and that the window is the negotiated size.
func TestIdleMemory(t *testing.T) {
	if size := unsafe.Sizeof(Parser{}); size > 512 {
		t.Errorf("Parser is %d bytes", size)
	}
	msg := bytes.Repeat([]byte(`{"type":"update","id":12345,"done":false}`), 20)
	for _, tc := range []struct {
		takeover   bool
		bits       int
		wantWindow int
	}{{true, 0, 32 << 10}, {true, 10, 1 << 10}, {false, 0, 0}} {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestSpeed)
		p := NewParser(&Options{Deflate: &DeflateParams{ServerNoContextTakeover: !tc.takeover, ServerMaxWindowBits: tc.bits}})
		if p.window != nil || p.buf != nil || p.out != nil {
			t.Fatal("a new parser holds buffers")
		}
		var in []byte
		for range 5 {
			if !tc.takeover {
				w.Reset(&buf)
			}
			in = append(in, serverFrame(0x40, deflateMessage(t, w, &buf, msg))...)
			in = append(in, serverFrame(0, msg)...)
		}
		n := 0
		// Split mid-frame so messages go through the pooled buffers.
		for len(in) > 0 {
			k := min(len(in), 333)
			if err := p.Feed(in[:k], func(m *Message) {
				n++
				if !bytes.Equal(m.Payload, msg) {
					t.Fatalf("message %d differs", n)
				}
			}); err != nil {
				t.Fatal(err)
			}
			in = in[k:]
		}
		if n != 10 {
			t.Fatalf("got %d messages", n)
		}
		if p.buf != nil || p.out != nil {
			t.Error("an idle parser holds message buffers")
		}
		if cap(p.window) != tc.wantWindow {
			t.Errorf("takeover=%v bits=%d: window of %d bytes, want %d", tc.takeover, tc.bits, cap(p.window), tc.wantWindow)
		}
		p.Release()
		if p.window != nil {
			t.Error("Release kept the window")
		}
	}
}

// TestNoAllocs checks that an uncompressed message that arrives whole
// costs no allocation.
func TestNoAllocs(t *testing.T) {
	p := NewParser(&Options{Client: true})
	frame := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}
	emit := func(*Message) {}
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Feed(frame, emit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message", allocs)
	}
}
