package session_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/preheatdev/preheat/session"
)

// jsonEvent is what a session event would look like as one line of JSON: the
// obvious format a batch could have used instead of the custom encoding.
// Text payloads are strings, as a JSON-minded encoder would write them
// (a []byte would be base64 and larger still).
type jsonEvent struct {
	Session   string    `json:"session"`
	Seq       uint64    `json:"seq"`
	Kind      string    `json:"kind"`
	Open      *jsonInfo `json:"open,omitempty"`
	Direction string    `json:"direction,omitempty"`
	Opcode    string    `json:"opcode,omitempty"`
	OffsetUS  int64     `json:"offset_us,omitempty"`
	Payload   string    `json:"payload,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	Code      uint16    `json:"code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	ClosedBy  string    `json:"closed_by,omitempty"`
}

type jsonInfo struct {
	Route       string      `json:"route"`
	Header      http.Header `json:"header,omitempty"`
	Subprotocol string      `json:"subprotocol,omitempty"`
	Extensions  string      `json:"extensions,omitempty"`
	TapID       string      `json:"tap_id,omitempty"`
	Start       time.Time   `json:"start"`
}

func toJSONEvent(e *session.Event) jsonEvent {
	j := jsonEvent{Session: e.Session.String(), Seq: e.Seq, Kind: e.Kind.String()}
	switch e.Kind {
	case session.KindOpen:
		j.Open = &jsonInfo{
			Route: e.Open.Route, Header: e.Open.Header, Subprotocol: e.Open.Subprotocol,
			Extensions: e.Open.Extensions, TapID: e.Open.TapID, Start: e.Open.Start,
		}
	case session.KindFrame:
		j.Direction = e.Direction.String()
		j.Opcode = e.Opcode.String()
		j.OffsetUS = e.Offset.Microseconds()
		j.Payload = string(e.Payload)
		j.Truncated = e.Truncated
	case session.KindClose:
		j.OffsetUS = e.Offset.Microseconds()
		j.Code = e.Code
		j.Reason = e.Reason
		j.ClosedBy = e.ClosedBy.String()
	}
	return j
}

// appendJSONGzip encodes events as JSON lines compressed with gzip at its
// default level, one gzip stream per batch, reusing zw and buf.
func appendJSONGzip(buf *bytes.Buffer, zw *gzip.Writer, events []session.Event) error {
	buf.Reset()
	zw.Reset(buf)
	enc := json.NewEncoder(zw)
	for i := range events {
		if err := enc.Encode(toJSONEvent(&events[i])); err != nil {
			return err
		}
	}
	return zw.Close()
}

// BenchmarkBaselineJSONGzip is the baseline for BenchmarkAppendBatch: the
// same batches of the same corpus, each event encoded as a JSON line with
// encoding/json and each batch compressed with compress/gzip at the default
// level. It reports the same metrics, so the two can be read side by side.
func BenchmarkBaselineJSONGzip(b *testing.B) {
	for _, n := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			bs, payload := batches(n)
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			encoded := 0
			for _, batch := range bs {
				if err := appendJSONGzip(&buf, zw, batch); err != nil {
					b.Fatal(err)
				}
				encoded += buf.Len()
			}
			b.SetBytes(int64(payload / len(bs)))
			b.ResetTimer()
			done := 0
			for i := 0; b.Loop(); i++ {
				batch := bs[i%len(bs)]
				if err := appendJSONGzip(&buf, zw, batch); err != nil {
					b.Fatal(err)
				}
				done += len(batch)
			}
			b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(encoded)/float64(payload), "stream-B/payload-B")
		})
	}
}
