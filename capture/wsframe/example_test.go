package wsframe_test

import (
	"fmt"

	"github.com/preheatdev/preheat/capture/wsframe"
)

func ExampleParser() {
	// The server-to-client direction: a text message in two fragments with a
	// ping between them, then a close frame, arriving in arbitrary reads.
	stream := []byte{
		0x01, 0x03, 'h', 'e', 'l', // text, FIN clear
		0x89, 0x01, '!', // ping
		0x80, 0x02, 'l', 'o', // continuation, FIN set
		0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e', // close 1000 "bye"
	}
	p := wsframe.NewParser(nil)
	defer p.Release()
	emit := func(m *wsframe.Message) {
		fmt.Printf("%s %q wire=%d", m.Opcode, m.Payload, m.WireBytes)
		if m.Opcode == wsframe.OpClose {
			fmt.Printf(" code=%d reason=%q", m.CloseCode, m.CloseReason)
		}
		fmt.Println()
	}
	for _, read := range [][]byte{stream[:4], stream[4:11], stream[11:]} {
		if err := p.Feed(read, emit); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// ping "!" wire=3
	// text "hello" wire=9
	// close "\x03\xe8bye" wire=7 code=1000 reason="bye"
}

func ExampleParseDeflate() {
	d, err := wsframe.ParseDeflate("permessage-deflate; server_no_context_takeover; client_max_window_bits=10")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", *d)
	// The client's frames are masked and compressed with a 1 KiB window kept
	// across messages; the server's are inflated one message at a time.
	_ = wsframe.NewParser(&wsframe.Options{Client: true, Deflate: d})

	_, err = wsframe.ParseDeflate("permessage-deflate; server_max_window_bits=16")
	fmt.Println(err)
	// Output:
	// {ServerNoContextTakeover:true ClientNoContextTakeover:false ServerMaxWindowBits:0 ClientMaxWindowBits:10}
	// parse extensions "permessage-deflate; server_max_window_bits=16": parameter "server_max_window_bits": window bits 16 out of range 8-15
}

func ExampleError() {
	p := wsframe.NewParser(&wsframe.Options{Client: true})
	err := p.Feed([]byte{0x81, 0x01, 'x'}, func(*wsframe.Message) {}) // not masked
	if e, ok := err.(*wsframe.Error); ok {
		fmt.Println(e.Reason)
	}
	fmt.Println(err)
	// Output:
	// unmasked_client_frame
	// parse websocket frame: unmasked_client_frame: client frame is not masked
}
