//go:build unix

package capture_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/preheatdev/preheat/capture"
	"github.com/preheatdev/preheat/internal/corpus"
	"github.com/preheatdev/preheat/session"
	"github.com/preheatdev/preheat/stream/dirlog"
)

// BenchmarkRecord measures capture's own work per message, the part of a
// capturing tap's cost that a proxy without capture does not pay: a tee fed
// a client query (a masked frame) and the server's result, as the proxy
// core feeds them after forwarding each chunk, into one of 64 sessions in
// turn, with the recorder's exporters compressing batches into a directory
// log in the background. A session is ended and another begun every 100
// pairs. After each round of 6,400 pairs the clock stops while the
// exporters drain the recorder's buffer below a quarter of its budget, so
// that no session is cut for the budget (a cut session costs nothing to
// feed); every frame must be recorded. ns/op is the proxy-side time per
// query and result pair; cpu-ns/op adds the exporters' CPU (the whole
// process's CPU time per pair, the drain pauses included).
func BenchmarkRecord(b *testing.B) {
	prod, err := dirlog.NewProducer(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close(b.Context())
	rec, err := capture.NewRecorder(prod, capture.DefaultPolicy(), &capture.RecorderOptions{TapID: "bench", Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close(b.Context())
	req := httptest.NewRequest(http.MethodGet, "http://tap/sync?client=web", nil)
	resp := http.Header{"Sec-Websocket-Protocol": {"sync.v3"}}
	g := corpus.New(1)
	const pairs = 64
	var client, server [pairs][]byte
	var size int
	for i := range pairs {
		kind := g.Kind()
		client[i] = frame(true, 1, g.Query(kind), true)
		server[i] = frame(true, 1, g.Result(g.LastID(), kind), false)
		size += len(client[i]) + len(server[i])
	}
	var sessions [64]*capture.Recording
	begin := func(i int) {
		if sessions[i] != nil {
			sessions[i].End(session.SideClient)
		}
		if sessions[i] = rec.Begin(req, resp); sessions[i] == nil {
			b.Fatal("the recorder did not admit a session")
		}
	}
	for i := range sessions {
		begin(i)
	}
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(int64(size / pairs))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	n := 0
	const round = 100 * len(sessions)
	for b.Loop() {
		s := n % len(sessions)
		if n%round == round-1 {
			b.StopTimer()
			for rec.Status().BufferBytes > rec.Status().BudgetBytes/4 {
				time.Sleep(time.Millisecond)
			}
			for i := range sessions {
				begin(i)
			}
			b.StartTimer()
		}
		// The tee may unmask in place: feed a fresh copy, as the proxy's
		// buffer is.
		buf = append(buf[:0], client[n%pairs]...)
		sessions[s].Client(buf, time.Now())
		buf = append(buf[:0], server[n%pairs]...)
		sessions[s].Server(buf, time.Now())
		n++
	}
	b.StopTimer()
	for _, s := range sessions {
		s.End(session.SideClient)
	}
	if err := rec.Close(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
	recorded := metricValue(rec.Metrics(), `preheat_tap_frames_recorded_total{direction="client"}`) +
		metricValue(rec.Metrics(), `preheat_tap_frames_recorded_total{direction="server"}`)
	if recorded != float64(2*n) {
		b.Fatalf("%v frames recorded of %d fed", recorded, 2*n)
	}
}
