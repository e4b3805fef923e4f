package redact

// CloseReason returns the redacted form of a close frame's reason and what
// was done. A reason is redacted like a text payload, except that one that
// must be blanked becomes Marker, as a reason is not a JSON document: "bad
// token abc" becomes Marker, "expired: eyJ..." becomes "expired: " + Marker.
func (r *Redactor) CloseReason(s string) (string, Result) {
	if s == "" {
		return s, Result{}
	}
	b := []byte(s)
	var ns names
	k := r.pre.kinds(b, hitName|hitShape, &ns)
	if k == 0 {
		return s, Result{}
	}
	out, res := r.json(nil, b, 0, k, ns)
	switch {
	case res.Blanked:
		return Marker, res
	case res.Fields+res.Tokens == 0:
		return s, res
	}
	return string(out), res
}
