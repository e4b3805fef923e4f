package redact_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/preheatdev/preheat/capture/redact"
)

func Example() {
	r, err := redact.New(&redact.Options{JSONKeys: []string{"device.pin"}})
	if err != nil {
		log.Fatal(err)
	}

	route, n := r.Route("/sync?client=web&access_token=tok_1f2e&userJwt=x")
	fmt.Println(route, n)

	h, n := r.Header(http.Header{
		"Authorization":            {"Bearer eyJhbGciOi"},
		"X-Forwarded-Access-Token": {"tok_1f2e"},
		"Origin":                   {"https://app.example"},
	})
	fmt.Println(h.Get("Authorization"), h.Get("X-Forwarded-Access-Token"), h.Get("Origin"), n)

	msg := []byte(`{"type":"connect","apiToken":"tok_1f2e","device":{"pin":"1234","model":"x1"},"note":"sent Bearer tok_1f2e0a9b"}`)
	out, res := r.Payload(nil, msg, false)
	fmt.Printf("%s %d %d\n", out, res.Fields, res.Tokens)

	out, res = r.Payload(nil, []byte(`token=tok_1f2e`), false)
	fmt.Printf("%s %v %v\n", out, res.Blanked, res.Reason)

	reason, _ := r.CloseReason("expired: eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
	fmt.Println(reason)
	// Output:
	// /sync?client=web&access_token=__preheat_redacted__&userJwt=__preheat_redacted__ 2
	// Bearer __preheat_redacted__ __preheat_redacted__ https://app.example 2
	// {"type":"connect","apiToken":"__preheat_redacted__","device":{"pin":"__preheat_redacted__","model":"x1"},"note":"sent Bearer __preheat_redacted__"} 2 1
	// "__preheat_redacted__" true invalid
	// expired: __preheat_redacted__
}
