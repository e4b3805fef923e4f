package replaycache

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/preheatdev/preheat/session"
)

// ClientOptions configure a Client. The zero value is usable.
type ClientOptions struct {
	// Token is sent as "Authorization: Bearer TOKEN" when set.
	Token string
	// ClientID is sent as X-Preheat-Client when set.
	//
	// Deprecated: servers ignore it. A header the client chooses cannot
	// name it to a rate limit; the server keys that on its IP address.
	ClientID string
	// HTTPClient makes the requests. Default a client without an overall
	// timeout (streams may be long); bound each call with its ctx.
	HTTPClient *http.Client
	// MaxFrameBytes bounds one frame of the event stream a cache sends, in
	// bytes: a longer declared length fails the stream with ErrTooLarge,
	// and a frame's buffer grows only as its bytes arrive. Default
	// 16 MiB + 1 KiB: the largest event batch (session.MaxBatchBytes
	// stored uncompressed) with its envelope.
	MaxFrameBytes int
	// MaxSessionBytes bounds what SessionReader.Next gathers for one
	// session, in bytes, counted as 128 bytes an event plus its payload,
	// close reason and handshake; past it Next fails with ErrTooLarge. It
	// bounds a List or Status answer's JSON too. Default 64 MiB: a session
	// within the tap's default limits (8 MiB of payload, 50,000 messages)
	// counts under 15 MiB.
	MaxSessionBytes int64
}

// ErrTooLarge is wrapped by the errors a Client returns for an answer past
// ClientOptions.MaxFrameBytes or MaxSessionBytes. A SessionReader that
// returned it is done: it returns the error again; close it.
var ErrTooLarge = errors.New("answer too large")

// Client talks to a replay cache Server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	opts ClientOptions
}

// NewClient returns a client of the cache at baseURL, such as
// http://preheat-cache:8090.
func NewClient(baseURL string, opts *ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse cache URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("parse cache URL %q: want http://HOST:PORT or https://...", baseURL)
	}
	o := ClientOptions{}
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = session.MaxBatchBytes + 1<<10
	}
	if o.MaxSessionBytes <= 0 {
		o.MaxSessionBytes = 64 << 20
	}
	return &Client{base: u, opts: o}, nil
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	if c.opts.ClientID != "" {
		req.Header.Set("X-Preheat-Client", c.opts.ClientID)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cache %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// StatusError is a cache's refusal of a request.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("cache answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Status returns the cache's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	resp, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := c.decodeJSON(resp.Body, &st); err != nil {
		return st, fmt.Errorf("cache status: %w", err)
	}
	return st, nil
}

// decodeJSON decodes an answer of at most MaxSessionBytes into v.
func (c *Client) decodeJSON(body io.Reader, v any) error {
	lr := &limitReader{r: body, n: c.opts.MaxSessionBytes}
	err := json.NewDecoder(lr).Decode(v)
	if lr.over {
		return fmt.Errorf("%w: more than MaxSessionBytes (%d) of JSON", ErrTooLarge, c.opts.MaxSessionBytes)
	}
	return err
}

// limitReader reads at most n bytes of r and notes a read past them.
type limitReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// List returns summaries of the cached sessions f selects.
func (c *Client) List(ctx context.Context, f Filter) ([]Summary, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/sessions", filterQuery(f), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Sessions []Summary `json:"sessions"`
	}
	if err := c.decodeJSON(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("cache list: %w", err)
	}
	return out.Sessions, nil
}

func filterQuery(f Filter) url.Values {
	q := url.Values{}
	if f.Route != "" {
		q.Set("route", f.Route)
	}
	if f.MinClientFrames > 0 {
		q.Set("min_client_frames", strconv.Itoa(f.MinClientFrames))
	}
	if f.MaxAge > 0 {
		q.Set("max_age", f.MaxAge.String())
	}
	if f.CompleteOnly {
		q.Set("complete", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Select asks for sessions and returns a reader of them.
func (c *Client) Select(ctx context.Context, req SelectRequest) (*SessionReader, error) {
	b := selectBody{
		Mode: string(req.Mode), Limit: req.Limit, Covered: req.Covered, Route: req.Route,
		MinClientFrames: req.MinClientFrames, CompleteOnly: req.CompleteOnly,
	}
	if req.MaxAge > 0 {
		b.MaxAge = req.MaxAge.String()
	}
	for _, id := range req.Exclude {
		b.Exclude = append(b.Exclude, id.String())
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/select", nil, b)
	if err != nil {
		return nil, err
	}
	return c.newSessionReader(resp.Body), nil
}

// Session returns a reader of one session's events. With follow, a live
// session's events keep coming until it ends (read them with NextBatch).
func (c *Client) Session(ctx context.Context, id session.ID, follow bool) (*SessionReader, error) {
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id.String(), q, nil)
	if err != nil {
		return nil, err
	}
	return c.newSessionReader(resp.Body), nil
}

// Session is one session as a cache served it.
type Session struct {
	ID     session.ID
	Events []session.Event
	// Complete is set when the close event and everything before it was
	// served; Truncated when the cache cut the session at a gap.
	Complete, Truncated bool
	// Kinds names the kinds of the session's client messages, sorted, as
	// the cache classified them; empty when the cache did not say.
	Kinds []string
}

// SessionReader reads sessions from a cache's framed batch stream. Close
// it when done.
type SessionReader struct {
	body       io.ReadCloser
	br         *bufio.Reader
	buf        []byte
	kinds      kindsFrame // the last kinds frame, for the session it names
	maxFrame   int
	maxSession int64
	err        error // ErrTooLarge, returned by every later call
}

type kindsFrame struct {
	id    session.ID
	names []string
}

func (c *Client) newSessionReader(body io.ReadCloser) *SessionReader {
	return &SessionReader{body: body, br: bufio.NewReaderSize(body, 64<<10),
		maxFrame: c.opts.MaxFrameBytes, maxSession: c.opts.MaxSessionBytes}
}

// Close ends the response.
func (r *SessionReader) Close() error { return r.body.Close() }

// Frame is one unit of the stream: a batch of events, or a session's end.
type Frame struct {
	// Events holds a batch's events; empty for an end.
	Events []session.Event
	// End is set at the end of a session: ID, Complete and Truncated say
	// which and how.
	End                 bool
	ID                  session.ID
	Complete, Truncated bool
}

// NextBatch returns the next batch or end, skipping heartbeats. It returns
// io.EOF at the end of the stream.
func (r *SessionReader) NextBatch() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	for {
		typ, err := r.br.ReadByte()
		if err != nil {
			return Frame{}, err // io.EOF at a frame boundary is the end
		}
		n, err := binary.ReadUvarint(r.br)
		if err != nil {
			return Frame{}, fmt.Errorf("cache stream: frame length: %w", unexpected(err))
		}
		if n > uint64(r.maxFrame) {
			r.err = fmt.Errorf("cache stream: %w: a frame of %d bytes, more than MaxFrameBytes (%d)", ErrTooLarge, n, r.maxFrame)
			return Frame{}, r.err
		}
		b, err := r.readBody(int(n))
		if err != nil {
			return Frame{}, fmt.Errorf("cache stream: frame body: %w", unexpected(err))
		}
		switch typ {
		case frameBatch:
			evs, err := session.DecodeBatch(b, nil)
			if err != nil {
				return Frame{}, fmt.Errorf("cache stream: %w", err)
			}
			return Frame{Events: evs, ID: evs[0].Session}, nil
		case frameEnd:
			if len(b) != 17 {
				return Frame{}, fmt.Errorf("cache stream: end frame of %d bytes", len(b))
			}
			return Frame{End: true, ID: session.ID(b[:16]), Complete: b[16]&endComplete != 0, Truncated: b[16]&endTruncated != 0}, nil
		case frameHeartbeat:
			continue
		case frameKinds:
			k, err := decodeKinds(b)
			if err != nil {
				return Frame{}, err
			}
			r.kinds = k
			continue
		case frameError:
			return Frame{}, fmt.Errorf("cache stream: server error: %s", b)
		default:
			continue // a frame type from a later version
		}
	}
}

// readBody reads a frame body of n bytes into r.buf, growing it as the
// bytes arrive rather than by the length a server declared.
func (r *SessionReader) readBody(n int) ([]byte, error) {
	b := r.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), max(cap(b), 64<<10)))
		}
		m, err := io.ReadFull(r.br, b[len(b):min(n, cap(b))])
		b = b[:len(b)+m]
		if err != nil {
			r.buf = b
			return nil, err
		}
	}
	r.buf = b
	return b, nil
}

func decodeKinds(b []byte) (kindsFrame, error) {
	if len(b) < 16 {
		return kindsFrame{}, fmt.Errorf("cache stream: kinds frame of %d bytes", len(b))
	}
	k := kindsFrame{id: session.ID(b[:16])}
	for b = b[16:]; len(b) > 0; {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return kindsFrame{}, errors.New("cache stream: malformed kinds frame")
		}
		k.names = append(k.names, string(b[w:w+int(n)]))
		b = b[w+int(n):]
	}
	return k, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Next returns the next whole session (its events up to its end frame). It
// returns io.EOF at the end of the stream.
func (r *SessionReader) Next() (*Session, error) {
	var s *Session
	var size int64
	for {
		f, err := r.NextBatch()
		if err != nil {
			if errors.Is(err, io.EOF) && s != nil {
				return nil, fmt.Errorf("cache stream: session %s: %w", s.ID, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if s == nil {
			s = &Session{ID: f.ID}
			if r.kinds.id == f.ID {
				s.Kinds = r.kinds.names
			}
		}
		if f.ID != s.ID {
			return nil, fmt.Errorf("cache stream: session %s interleaved with %s", f.ID, s.ID)
		}
		if f.End {
			s.Complete, s.Truncated = f.Complete, f.Truncated
			return s, nil
		}
		for i := range f.Events {
			size += gatheredBytes(&f.Events[i])
		}
		if size > r.maxSession {
			r.err = fmt.Errorf("cache stream: %w: session %s holds more than MaxSessionBytes (%d)", ErrTooLarge, s.ID, r.maxSession)
			return nil, r.err
		}
		s.Events = append(s.Events, f.Events...)
	}
}

// gatheredBytes is what an event counts against MaxSessionBytes: about what
// it holds in memory.
func gatheredBytes(e *session.Event) int64 {
	n := 128 + len(e.Payload) + len(e.Reason)
	if in := e.Open; in != nil {
		n += 128 + len(in.Route) + len(in.Subprotocol) + len(in.Extensions) + len(in.TapID)
		for k, vs := range in.Header {
			n += 64 + len(k)
			for _, v := range vs {
				n += 16 + len(v)
			}
		}
	}
	return int64(n)
}
