package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Middleware returns a handler that records the websocket sessions next
// serves. It suits Go routers that proxy or serve websockets themselves:
// next must take the connection over with Hijack, as coder/websocket,
// gorilla/websocket and httputil.ReverseProxy do. Requests that are not
// websocket upgrades pass straight through.
//
// Unlike the Tap, the middleware sees the bytes inside next's reads and
// writes, so it copies them (into pooled buffers) before parsing; next's
// buffers are never modified.
func (r *Recorder) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !isWebsocketUpgrade(req) {
			next.ServeHTTP(w, req)
			return
		}
		hw := &hijackWriter{ResponseWriter: w, rec: r, req: req}
		next.ServeHTTP(hw, req)
	})
}

// hijackWriter watches a handler's response to a websocket upgrade and wraps
// the connection it hijacks.
type hijackWriter struct {
	http.ResponseWriter
	rec    *Recorder
	req    *http.Request
	status int
	header http.Header // the response header when WriteHeader(101) was called
}

func (h *hijackWriter) WriteHeader(code int) {
	// Informational answers (103 Early Hints) come before the real one.
	if h.status == 0 && (code == http.StatusSwitchingProtocols || code >= 200) {
		h.status = code
		if code == http.StatusSwitchingProtocols {
			h.header = h.ResponseWriter.Header().Clone()
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Flush passes flushes through.
func (h *hijackWriter) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack takes over the connection and returns one that records what passes.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	tc := &tapConn{Conn: c, h: h}
	if h.status == http.StatusSwitchingProtocols {
		tc.rec = h.rec.Begin(h.req, h.header)
	} else {
		tc.head = make([]byte, 0, 1024) // the handler writes the response itself
	}
	// Bytes the client sent after its request that the server already
	// buffered must stay in the returned reader's buffer, where handlers
	// look for them: coder/websocket, for one, takes Peek(Buffered()) and
	// resets the reader onto the conn. So they are loaded into it now, and
	// recorded as they are.
	size := brw.Reader.Size()
	var br *bufio.Reader
	if n := brw.Reader.Buffered(); n > 0 {
		buffered, _ := brw.Reader.Peek(n)
		prefix := &prefixReader{r: bytes.NewReader(bytes.Clone(buffered)), tc: tc}
		br = bufio.NewReaderSize(io.MultiReader(prefix, tc), max(size, n))
		if _, err := br.Peek(n); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("capture: buffer client bytes: %w", err)
		}
	} else {
		br = bufio.NewReaderSize(tc, size)
	}
	return tc, bufio.NewReadWriter(br, bufio.NewWriterSize(tc, brw.Writer.Size())), nil
}

// tapConn is a hijacked connection whose bytes are recorded.
type tapConn struct {
	net.Conn
	h         *hijackWriter
	readEnded atomic.Bool // a read failed or hit EOF before Close

	rmu, wmu  sync.Mutex // serialize each direction's parsing
	head      []byte     // the raw response written so far, until its end; under wmu
	rec       *Recording // set once the 101 response is seen
	pending   []byte     // client bytes read before the response was seen; under rmu
	overflow  bool       // pending outgrew its bound: do not record; under rmu
	closeOnce sync.Once
}

// prefixReader records bytes the server had buffered before the hijack as
// the handler reads them.
type prefixReader struct {
	r  io.Reader
	tc *tapConn
}

func (p *prefixReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.tc.client(b[:n], time.Now())
	}
	return n, err
}

// Read reads from the connection and records what it read.
func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.client(p[:n], time.Now())
	}
	if err != nil {
		c.readEnded.Store(true)
	}
	return n, err
}

func (c *tapConn) client(b []byte, at time.Time) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.wmu.Lock()
	seen, rec := c.head == nil, c.rec
	c.wmu.Unlock()
	if !seen {
		// The response has not been seen yet: keep what the client sent
		// for when it is. Past the bound the session cannot be recorded
		// whole, so it is not recorded at all.
		if c.overflow || len(c.pending)+len(b) > maxPendingClientBytes {
			c.overflow, c.pending = true, nil
			return
		}
		c.pending = append(c.pending, b...)
		return
	}
	if rec != nil && len(c.pending) > 0 {
		rec.Client(c.pending, at) // what came before the response, first
	}
	c.pending = nil
	if rec != nil {
		feedCopy(rec.Client, b, at)
	}
}

const (
	maxPendingClientBytes = 64 << 10
	maxResponseHeadBytes  = 64 << 10
)

// Write writes to the connection and records what was written.
func (c *tapConn) Write(p []byte) (int, error) {
	at := time.Now()
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.server(p[:n], at)
	}
	return n, err
}

func (c *tapConn) server(b []byte, at time.Time) {
	c.wmu.Lock()
	if c.head == nil {
		if c.rec != nil && len(b) > 0 {
			feedCopy(c.rec.Server, b, at)
		}
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()

	// Still inside the handler's raw HTTP response: both directions wait
	// (locks in their usual order) until it is read and the recording, if
	// any, has begun with the client bytes that came before it.
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.head == nil { // another write finished the response meanwhile
		if c.rec != nil && len(b) > 0 {
			feedCopy(c.rec.Server, b, at)
		}
		return
	}
	from := max(0, len(c.head)-3)
	if len(c.head)+len(b) > maxResponseHeadBytes {
		c.head, c.pending = nil, nil // not a response we can read: do not record
		return
	}
	c.head = append(c.head, b...)
	i := bytes.Index(c.head[from:], []byte("\r\n\r\n"))
	if i < 0 {
		return
	}
	end := from + i + 4
	head, rest := c.head[:end], c.head[end:]
	c.head = nil
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), c.h.req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols && !c.overflow {
		c.rec = c.h.rec.Begin(c.h.req, resp.Header)
	}
	if c.rec != nil && len(c.pending) > 0 {
		c.rec.Client(c.pending, at)
	}
	c.pending = nil
	if c.rec != nil && len(rest) > 0 {
		feedCopy(c.rec.Server, rest, at)
	}
}

// feedCopy passes a pooled copy of b to feed, which may modify it.
func feedCopy(feed func([]byte, time.Time), b []byte, at time.Time) {
	for len(b) > 0 {
		bp := pumpBuffers.Get().(*[]byte)
		n := copy(*bp, b)
		feed((*bp)[:n], at)
		pumpBuffers.Put(bp)
		b = b[n:]
	}
}

// CloseWrite half-closes the connection when it can, as a handler such as
// httputil.ReverseProxy expects of the conn it hijacked.
func (c *tapConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CloseRead shuts the reading side when the connection can.
func (c *tapConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// Close closes the connection and ends the recording.
func (c *tapConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.rmu.Lock()
		c.wmu.Lock()
		defer c.wmu.Unlock()
		defer c.rmu.Unlock()
		if c.rec == nil {
			return
		}
		side := sideServer
		if c.readEnded.Load() {
			side = sideClient
		}
		c.rec.End(side)
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
