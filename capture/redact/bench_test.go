package redact

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/preheatdev/preheat/internal/corpus"
)

// benchMessages returns sync-protocol messages from the corpus generator:
// server results of 300 B to 2 KiB and client queries, none with a secret.
func benchMessages() (results, queries [][]byte) {
	g := corpus.New(42)
	for len(results) < 256 {
		kind := g.Kind()
		q := g.Query(kind)
		if len(queries) < 256 {
			queries = append(queries, q)
		}
		if res := g.Result(g.LastID(), kind); len(res) >= 300 && len(res) <= 2048 {
			results = append(results, res)
		}
	}
	return results, queries
}

// BenchmarkPayload measures Payload on realistic messages. The clean cases
// are the common one: the pre-check finds no name and the message is
// copied to dst. The secret cases parse and splice one token.
func BenchmarkPayload(b *testing.B) {
	results, queries := benchMessages()
	g := corpus.New(7)
	var connects, withToken [][]byte
	for i := range 256 {
		connects = append(connects, g.Connect())
		// A result that carries a token in its last object.
		res := results[i]
		withToken = append(withToken, append(bytes.Clone(res[:len(res)-1]), `,"token":"tok_0123456789abcdef"}`...))
	}
	r := mustNew(b, nil)
	run := func(name string, msgs [][]byte, wantFields int) {
		b.Run(name, func(b *testing.B) {
			total := 0
			for _, m := range msgs {
				total += len(m)
			}
			b.SetBytes(int64(total / len(msgs)))
			b.ReportAllocs()
			dst := make([]byte, 0, 4096)
			var res Result
			for i := 0; b.Loop(); i++ {
				dst, res = r.Payload(dst[:0], msgs[i%len(msgs)], false)
				if res.Fields != wantFields {
					b.Fatalf("Payload(%s) = %+v, want %d fields", msgs[i%len(msgs)], res, wantFields)
				}
			}
		})
	}
	run("clean/result", results, 0)
	run("clean/query", queries, 0)
	run("secret/connect", connects, 1)
	run("secret/result", withToken, 1)
}

// BenchmarkPrecheck measures the pre-check alone on clean results.
func BenchmarkPrecheck(b *testing.B) {
	results, _ := benchMessages()
	r := mustNew(b, nil)
	total := 0
	for _, m := range results {
		total += len(m)
	}
	b.SetBytes(int64(total / len(results)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if r.pre.maybe(results[i%len(results)]) {
			b.Fatal("pre-check matched a clean message")
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	r := mustNew(b, nil)
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Route("/sync?client=web&v=3&tz=Europe%2FDublin")
		}
	})
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Route("/sync?client=web&access_token=eyJhbGciOiJIUzI1NiJ9.e30.abc&v=3")
		}
	})
}

func BenchmarkHeader(b *testing.B) {
	r := mustNew(b, nil)
	h := http.Header{
		"Authorization":            {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"},
		"Cookie":                   {"sid=1; theme=dark"},
		"Sec-Websocket-Key":        {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version":    {"13"},
		"Sec-Websocket-Protocol":   {"sync.v3"},
		"Sec-Websocket-Extensions": {"permessage-deflate"},
		"User-Agent":               {"Mozilla/5.0"},
		"Origin":                   {"https://app.example"},
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Header(h)
	}
}
