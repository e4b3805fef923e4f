package session

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

// JSON is the JSON form of an Event, one object per line in `preheat
// inspect --json` and the replay cache's JSON lines. Payloads that are valid
// UTF-8 are written as text in "payload", others as hexadecimal in
// "payload_hex". Fields that do not apply to the event's kind are omitted.
type JSON struct {
	Session     ID          `json:"session"`
	Seq         uint64      `json:"seq"`
	Kind        string      `json:"kind"`
	OffsetUS    int64       `json:"offset_us"`
	Direction   string      `json:"direction,omitempty"`
	Opcode      string      `json:"opcode,omitempty"`
	Payload     *string     `json:"payload,omitempty"`
	PayloadHex  string      `json:"payload_hex,omitempty"`
	Truncated   bool        `json:"truncated,omitempty"`
	Route       string      `json:"route,omitempty"`
	Header      http.Header `json:"header,omitempty"`
	Subprotocol string      `json:"subprotocol,omitempty"`
	Extensions  string      `json:"extensions,omitempty"`
	TapID       string      `json:"tap,omitempty"`
	Start       time.Time   `json:"start,omitzero"`
	Code        uint16      `json:"code,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	ClosedBy    string      `json:"closed_by,omitempty"`
}

// ToJSON returns the JSON form of e.
func (e *Event) ToJSON() JSON {
	j := JSON{Session: e.Session, Seq: e.Seq, Kind: e.Kind.String(), OffsetUS: e.Offset.Microseconds()}
	switch e.Kind {
	case KindOpen:
		if e.Open != nil {
			j.Route, j.Subprotocol, j.Extensions, j.TapID, j.Start = e.Open.Route, e.Open.Subprotocol, e.Open.Extensions, e.Open.TapID, e.Open.Start
			if len(e.Open.Header) > 0 {
				j.Header = e.Open.Header
			}
		}
	case KindFrame:
		j.Direction, j.Opcode, j.Truncated = e.Direction.String(), e.Opcode.String(), e.Truncated
		if utf8.Valid(e.Payload) {
			s := string(e.Payload)
			j.Payload = &s
		} else {
			j.PayloadHex = hex.EncodeToString(e.Payload)
		}
	case KindClose:
		j.Code, j.Reason, j.ClosedBy = e.Code, e.Reason, e.ClosedBy.String()
	}
	return j
}

// Event converts the JSON form back to an Event.
func (j *JSON) Event() (Event, error) {
	e := Event{Session: j.Session, Seq: j.Seq, Offset: time.Duration(j.OffsetUS) * time.Microsecond}
	switch j.Kind {
	case "open":
		e.Kind = KindOpen
		e.Open = &Info{Route: j.Route, Header: j.Header, Subprotocol: j.Subprotocol, Extensions: j.Extensions, TapID: j.TapID, Start: j.Start}
	case "frame":
		e.Kind = KindFrame
		switch j.Direction {
		case "client":
			e.Direction = ClientToServer
		case "server":
			e.Direction = ServerToClient
		default:
			return e, fmt.Errorf("event json: direction %q", j.Direction)
		}
		switch j.Opcode {
		case "text":
			e.Opcode = Text
		case "binary":
			e.Opcode = Binary
		default:
			return e, fmt.Errorf("event json: opcode %q", j.Opcode)
		}
		if j.Payload != nil {
			e.Payload = []byte(*j.Payload)
		} else if j.PayloadHex != "" {
			p, err := hex.DecodeString(j.PayloadHex)
			if err != nil {
				return e, fmt.Errorf("event json: payload_hex: %w", err)
			}
			e.Payload = p
		}
		e.Truncated = j.Truncated
	case "close":
		e.Kind = KindClose
		e.Code, e.Reason = j.Code, j.Reason
		switch j.ClosedBy {
		case "client":
			e.ClosedBy = SideClient
		case "server":
			e.ClosedBy = SideServer
		case "tap":
			e.ClosedBy = SideTap
		}
	default:
		return e, fmt.Errorf("event json: kind %q", j.Kind)
	}
	return e, nil
}

// MarshalJSON writes e in its JSON form.
func (e Event) MarshalJSON() ([]byte, error) { return json.Marshal(e.ToJSON()) }

// UnmarshalJSON reads e from its JSON form.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j JSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	v, err := j.Event()
	if err != nil {
		return err
	}
	*e = v
	return nil
}
