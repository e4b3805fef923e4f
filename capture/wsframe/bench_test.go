package wsframe_test

import (
	"runtime"
	"testing"

	"github.com/preheatdev/preheat/capture/wsframe"
	"github.com/preheatdev/preheat/internal/corpus"
)

// benchMessages returns realistic JSON sync messages for one direction:
// queries (about 300 bytes) from the client, results and updates (about
// 300 bytes to 2 KiB) from the server.
func benchMessages(client bool, n int) [][]byte {
	g := corpus.New(42)
	var msgs [][]byte
	for len(msgs) < n {
		kind := g.Kind()
		q := g.Query(kind)
		if client {
			msgs = append(msgs, q)
			continue
		}
		msgs = append(msgs, g.Result(g.LastID(), kind))
		if g.LastID()%4 == 0 {
			msgs = append(msgs, g.Update())
		}
	}
	return msgs[:n]
}

// BenchmarkParse parses a stream of 1000 messages fed in 16 KiB reads, as
// the tap sees it. Bytes per second count wire bytes; ns/msg and allocs/msg
// are per message.
func BenchmarkParse(b *testing.B) {
	const nmsg = 1000
	cases := []struct {
		name     string
		client   bool
		deflate  *wsframe.DeflateParams
		takeover bool
	}{
		{"client/uncompressed", true, nil, false},
		{"server/uncompressed", false, nil, false},
		{"client/deflate_takeover", true, &wsframe.DeflateParams{}, true},
		{"server/deflate_takeover", false, &wsframe.DeflateParams{}, true},
		{"server/deflate_no_takeover", false, &wsframe.DeflateParams{ServerNoContextTakeover: true}, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			msgs := benchMessages(c.client, nmsg)
			var comp *compressor
			if c.deflate != nil {
				comp = newCompressor(c.takeover)
			}
			var in []byte
			payload := 0
			for _, m := range msgs {
				f := frame{op: wsframe.OpText, mask: c.client, key: key, payload: m}
				if comp != nil {
					f.payload, f.rsv = comp.compress(b, m), 0x40
				}
				in = append(in, f.wire()...)
				payload += len(m)
			}
			opts := &wsframe.Options{Client: c.client, Deflate: c.deflate}
			scratch := make([]byte, 16<<10)
			got := 0
			emit := func(m *wsframe.Message) { got += len(m.Payload) }
			pass := func(p *wsframe.Parser) {
				for rest := in; len(rest) > 0; {
					n := copy(scratch, rest)
					rest = rest[n:]
					if err := p.Feed(scratch[:n], emit); err != nil {
						b.Fatal(err)
					}
				}
			}
			// Warm the pools.
			p := wsframe.NewParser(opts)
			pass(p)
			p.Release()
			if got != payload {
				b.Fatalf("parsed %d payload bytes, want %d", got, payload)
			}

			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for b.Loop() {
				p := wsframe.NewParser(opts)
				pass(p)
				p.Release()
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			msgsDone := float64(b.N) * nmsg
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgsDone, "ns/msg")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/msgsDone, "allocs/msg")
			b.ReportMetric(float64(payload)/nmsg, "B/msg")
			b.ReportMetric(float64(len(in))/float64(payload), "wire/payload")
		})
	}
}
