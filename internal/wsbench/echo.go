package wsbench

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// EchoOptions configure the echo handler. A nil *EchoOptions means the
// defaults.
type EchoOptions struct {
	// Compression negotiates permessage-deflate when the client offers it.
	// Default false: messages go uncompressed, as most proxied sync traffic
	// on a LAN does, and compression would dominate the CPU measured.
	Compression bool
	// ReadLimit is the largest message accepted, in bytes. Default 1 MiB.
	ReadLimit int64
	// Logger receives accept failures at debug level. Default slog.Default().
	Logger *slog.Logger
}

func (o *EchoOptions) withDefaults() EchoOptions {
	var c EchoOptions
	if o != nil {
		c = *o
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// echoBuffers hold one message while it is echoed; a connection holds none
// while it is idle, so the echo server's memory does not depend on how many
// idle connections a test opens.
var echoBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// NewEchoHandler returns a handler that accepts websocket upgrades and sends
// every message back, text as text and binary as binary, until the client
// closes.
func NewEchoHandler(opts *EchoOptions) http.Handler {
	o := opts.withDefaults()
	mode := websocket.CompressionDisabled
	if o.Compression {
		mode = websocket.CompressionContextTakeover
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: mode, InsecureSkipVerify: true})
		if err != nil {
			o.Logger.Debug("echo: accept", "err", err)
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(o.ReadLimit)
		ctx := r.Context()
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				if websocket.CloseStatus(err) == -1 && !errors.Is(err, io.EOF) {
					o.Logger.Debug("echo: read", "err", err)
				}
				return
			}
			bp := echoBuffers.Get().(*[]byte)
			b, err := readAll(rd, (*bp)[:0])
			if err == nil {
				err = c.Write(ctx, typ, b)
			}
			*bp = b
			echoBuffers.Put(bp)
			if err != nil {
				return
			}
		}
	})
}

// readAll reads r to its end, appending to b, and returns the extended
// slice.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return b, nil
			}
			return b, err
		}
	}
}
