package redact_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/preheatdev/preheat/capture/redact"
)

func Example() {
	r, err := redact.New(&redact.Options{JSONKeys: []string{"auth.session"}})
	if err != nil {
		log.Fatal(err)
	}

	route, n := r.Route("/sync?client=web&access_token=eyJhbGciOi")
	fmt.Println(route, n)

	h, n := r.Header(http.Header{"Authorization": {"Bearer eyJhbGciOi"}, "Origin": {"https://app.example"}})
	fmt.Println(h.Get("Authorization"), h.Get("Origin"), n)

	msg := []byte(`{"type":"connect","id":0,"token":"tok_1f2e","auth":{"session":{"id":7}},"resume":null}`)
	out, res := r.Payload(nil, msg, false)
	fmt.Printf("%s %d\n", out, res.Fields)

	out, res = r.Payload(nil, []byte(`token=tok_1f2e`), false)
	fmt.Printf("%s %v %v\n", out, res.Blanked, res.Reason)
	// Output:
	// /sync?client=web&access_token=__preheat_redacted__ 1
	// Bearer __preheat_redacted__ https://app.example 1
	// {"type":"connect","id":0,"token":"__preheat_redacted__","auth":{"session":"__preheat_redacted__"},"resume":null} 2
	// "__preheat_redacted__" true invalid
}
