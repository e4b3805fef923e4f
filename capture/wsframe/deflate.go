package wsframe

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

const (
	minWindowBits = 8
	maxWindowBits = 15
)

// DeflateParams are the permessage-deflate parameters (RFC 7692 section 7.1)
// a server accepted.
type DeflateParams struct {
	// ServerNoContextTakeover is set when the server resets its compression
	// context for each message it sends.
	ServerNoContextTakeover bool
	// ClientNoContextTakeover is set when the client resets its compression
	// context for each message it sends.
	ClientNoContextTakeover bool
	// ServerMaxWindowBits is the base-2 logarithm of the LZ77 window the
	// server compresses with, 8 to 15. 0 means 15 (32 KiB), the default when
	// the parameter is absent.
	ServerMaxWindowBits int
	// ClientMaxWindowBits is the base-2 logarithm of the LZ77 window the
	// client compresses with, 8 to 15. 0 means 15 (32 KiB). [NewParser]
	// takes values outside 8 to 15 as 15, for both fields.
	ClientMaxWindowBits int
}

// ParseDeflate parses the value of a server's Sec-WebSocket-Extensions
// response header and returns the permessage-deflate parameters it accepted,
// or nil and no error when it accepted no permessage-deflate. Other
// extensions in the header are skipped. When the header occurs more than once,
// join its values with ", ". A permessage-deflate element with unknown,
// repeated or malformed parameters, or more than one such element, is an
// error: the connection's compressed frames could not be read.
func ParseDeflate(header string) (*DeflateParams, error) {
	d, err := parseDeflate(header)
	if err != nil {
		return nil, fmt.Errorf("parse extensions %q: %w", header, err)
	}
	return d, nil
}

func parseDeflate(header string) (*DeflateParams, error) {
	var d *DeflateParams
	for ext := range splitQuoted(header, ',') {
		params := splitQuoted(ext, ';')
		var name string
		first := true
		var dp DeflateParams
		seen := map[string]bool{}
		for param := range params {
			param = strings.TrimSpace(param)
			if first {
				first = false
				name = param
				if name == "" {
					break
				}
				if !isToken(name) {
					return nil, fmt.Errorf("bad extension name %q", name)
				}
				if !strings.EqualFold(name, "permessage-deflate") {
					break
				}
				if d != nil {
					return nil, errors.New("permessage-deflate accepted more than once")
				}
				continue
			}
			key, value, hasValue := strings.Cut(param, "=")
			key = strings.ToLower(strings.TrimSpace(key))
			if seen[key] {
				return nil, fmt.Errorf("repeated parameter %q", key)
			}
			seen[key] = true
			if hasValue {
				v, err := unquote(strings.TrimSpace(value))
				if err != nil {
					return nil, fmt.Errorf("parameter %q: %w", key, err)
				}
				value = v
			}
			switch key {
			case "server_no_context_takeover", "client_no_context_takeover":
				if hasValue {
					return nil, fmt.Errorf("parameter %q takes no value", key)
				}
				if key[0] == 's' {
					dp.ServerNoContextTakeover = true
				} else {
					dp.ClientNoContextTakeover = true
				}
			case "server_max_window_bits", "client_max_window_bits":
				if !hasValue {
					return nil, fmt.Errorf("parameter %q needs a value", key)
				}
				bits, err := parseWindowBits(value)
				if err != nil {
					return nil, fmt.Errorf("parameter %q: %w", key, err)
				}
				if key[0] == 's' {
					dp.ServerMaxWindowBits = bits
				} else {
					dp.ClientMaxWindowBits = bits
				}
			default:
				return nil, fmt.Errorf("unsupported permessage-deflate parameter %q", key)
			}
		}
		if strings.EqualFold(name, "permessage-deflate") {
			d = &dp
		}
	}
	return d, nil
}

func parseWindowBits(s string) (int, error) {
	if len(s) == 0 || len(s) > 2 || s[0] == '0' {
		return 0, fmt.Errorf("bad window bits %q", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad window bits %q", s)
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < minWindowBits || n > maxWindowBits {
		return 0, fmt.Errorf("window bits %d out of range 8-15", n)
	}
	return n, nil
}

// splitQuoted yields the parts of s between unquoted sep bytes.
func splitQuoted(s string, sep byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		start, quoted := 0, false
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\' && quoted:
				i++
			case c == '"':
				quoted = !quoted
			case c == sep && !quoted:
				if !yield(s[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(s[start:])
	}
}

func unquote(s string) (string, error) {
	if len(s) == 0 || s[0] != '"' {
		if !isToken(s) {
			return "", fmt.Errorf("bad value %q", s)
		}
		return s, nil
	}
	if len(s) < 2 || s[len(s)-1] != '"' {
		return "", fmt.Errorf("unterminated quoted value %q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// deflateTail ends each compressed message; the sender strips it (RFC 7692
// section 7.2.1).
const deflateTail = "\x00\x00\xff\xff"

// tailReader reads b, then deflateTail. It is a flate.Reader, so the
// decompressor reads it directly without a bufio.Reader.
type tailReader struct {
	b    []byte
	tail int
}

func (r *tailReader) Read(p []byte) (int, error) {
	if len(r.b) > 0 {
		n := copy(p, r.b)
		r.b = r.b[n:]
		return n, nil
	}
	if r.tail < len(deflateTail) {
		n := copy(p, deflateTail[r.tail:])
		r.tail += n
		return n, nil
	}
	return 0, io.EOF
}

func (r *tailReader) ReadByte() (byte, error) {
	if len(r.b) > 0 {
		c := r.b[0]
		r.b = r.b[1:]
		return c, nil
	}
	if r.tail < len(deflateTail) {
		c := deflateTail[r.tail]
		r.tail++
		return c, nil
	}
	return 0, io.EOF
}

func (r *tailReader) done() bool { return len(r.b) == 0 && r.tail == len(deflateTail) }

// Decompressors (about 40 KiB each) are shared: a parser holds one only
// while it inflates a message.
var flateReaderPool sync.Pool

// noInput is what pooled decompressors read from; it is never read.
var noInput tailReader

// Windows are pooled per size, indexed by window bits.
var windowPools [maxWindowBits + 1]sync.Pool

// inflate decompresses one message's compressed bytes and returns its
// payload, at most maxMsg bytes, and whether it was cut to that length.
func (p *Parser) inflate(src []byte) ([]byte, bool, *Error) {
	p.src = tailReader{b: src}
	var dict []byte
	if p.takeover {
		if p.window == nil {
			if w, ok := windowPools[p.windowBits].Get().(*[]byte); ok {
				p.window = (*w)[:0]
			} else {
				p.window = make([]byte, 0, 1<<p.windowBits)
			}
		}
		dict = p.window
	}
	var fr io.ReadCloser
	if r, ok := flateReaderPool.Get().(io.ReadCloser); ok {
		fr = r
		_ = r.(flate.Resetter).Reset(&p.src, dict)
	} else {
		fr = flate.NewReaderDict(&p.src, dict)
	}
	defer func() {
		// Drop the reference to this parser before pooling the reader.
		_ = fr.(flate.Resetter).Reset(&noInput, nil)
		flateReaderPool.Put(fr)
	}()

	if p.out == nil {
		p.out = getBuf()
	}
	out := (*p.out)[:0]
	defer func() { *p.out = out[:0] }()

	total := 0
	truncated := false
	for {
		var dst []byte
		if len(out) < p.maxMsg {
			if len(out) == cap(out) {
				out = slices.Grow(out, min(p.maxMsg-len(out), max(len(out), 4096)))
			}
			dst = out[len(out):min(cap(out), p.maxMsg)]
		} else {
			// The payload is full: read on only for the window (or to learn
			// whether anything was cut), into scratch space past the payload.
			if truncated && !p.takeover {
				break
			}
			const scratch = 32 << 10
			if cap(out)-len(out) < scratch {
				out = slices.Grow(out, scratch)
			}
			dst = out[len(out) : len(out)+scratch]
			if !p.takeover {
				dst = dst[:1]
			}
		}
		n, err := fr.Read(dst)
		total += n
		if total > p.maxInflate {
			return nil, false, newError(ReasonInflateLimit, "message inflates to more than %d bytes", p.maxInflate)
		}
		if len(out) < p.maxMsg {
			out = out[:len(out)+n]
		} else if n > 0 {
			if !truncated && p.takeover {
				p.windowWrite(out)
			}
			truncated = true
			if p.takeover {
				p.windowWrite(dst[:n])
			}
		}
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF && p.src.done() {
				break
			}
			return nil, false, &Error{Reason: ReasonInflate, Err: err}
		}
	}
	if p.takeover && !truncated {
		p.windowWrite(out)
	}
	return out, truncated, nil
}

// windowWrite appends b to the sliding window, keeping its last
// 2^windowBits bytes.
func (p *Parser) windowWrite(b []byte) {
	w := p.window
	size := cap(w)
	if len(b) >= size {
		w = w[:size]
		copy(w, b[len(b)-size:])
		p.window = w
		return
	}
	if over := len(w) + len(b) - size; over > 0 {
		copy(w, w[over:])
		w = w[:len(w)-over]
	}
	p.window = append(w, b...)
}

func (p *Parser) releaseWindow() {
	if p.window == nil {
		return
	}
	w := p.window[:0]
	p.window = nil
	windowPools[p.windowBits].Put(&w)
}
