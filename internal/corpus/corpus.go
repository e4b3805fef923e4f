// Package corpus generates realistic synthetic websocket sessions of a
// reactive sync protocol: a connect message, then queries and subscriptions
// of many kinds with ids and nested parameters, answered by larger JSON
// results and pushed updates. It is deterministic for a seed, so benchmarks
// and tests see the same traffic on every run.
//
// It owns only the shape of the messages; it does no I/O. Benchmarks use it
// to measure encoding, the demo and tests use it to drive clients.
package corpus

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/preheatdev/preheat/session"
)

// Kinds are the query kinds a generated client sends, most popular first.
// Popularity falls off like a Zipf distribution, so rare kinds exist and
// matter for coverage.
var Kinds = []string{
	"tasks.list", "tasks.get", "projects.get", "user.me", "inbox.list",
	"search.typeahead", "tasks.subtasks", "projects.sections", "comments.list",
	"teams.members", "portfolios.items", "goals.progress", "tags.list",
	"attachments.list", "workspaces.get", "reports.burnup", "timeline.range",
	"rules.list", "forms.get", "audit.events",
}

// Generator produces sessions and messages from a seeded random source.
type Generator struct {
	// MutateRate is the fraction of a session's client messages, after the
	// connect, that are mutations (see Mutation) instead of queries.
	// Default 0: read-only sessions.
	MutateRate float64

	rng  *rand.Rand
	zipf *rand.Zipf
	user int
	seq  int
}

// New returns a generator seeded with seed.
func New(seed uint64) *Generator {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &Generator{
		rng:  rng,
		zipf: rand.NewZipf(rng, 1.3, 2, uint64(len(Kinds)-1)),
		user: 1000 + rng.IntN(9000),
	}
}

// Connect returns the message a client sends first to open a sync session.
func (g *Generator) Connect() []byte {
	g.user = 1000 + g.rng.IntN(9000)
	return fmt.Appendf(nil,
		`{"type":"connect","id":0,"client":{"version":"2026.11.%d","platform":"web","tz":"Europe/Dublin"},"user":%d,"token":"tok_%016x","resume":null}`,
		g.rng.IntN(30), g.user, g.rng.Uint64())
}

// Kind returns the next query kind, drawn by popularity.
func (g *Generator) Kind() string { return Kinds[g.zipf.Uint64()] }

// Query returns a client message of the given kind.
func (g *Generator) Query(kind string) []byte {
	g.seq++
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"query","id":`...)
	b = strconv.AppendInt(b, int64(g.seq), 10)
	b = append(b, `,"op":"`...)
	b = append(b, kind...)
	b = append(b, `","params":{"workspace":`...)
	b = strconv.AppendInt(b, int64(1000000+g.rng.IntN(50)), 10)
	b = append(b, `,"object":`...)
	b = strconv.AppendInt(b, g.objectID(), 10)
	b = append(b, `,"fields":[`...)
	for i, n := 0, 2+g.rng.IntN(5); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, fields[g.rng.IntN(len(fields))])
	}
	b = append(b, `],"limit":`...)
	b = strconv.AppendInt(b, int64(25*(1+g.rng.IntN(4))), 10)
	if g.rng.IntN(3) == 0 {
		b = append(b, `,"filter":{"completed":false,"assignee":`...)
		b = strconv.AppendInt(b, int64(g.user), 10)
		b = append(b, `}`...)
	}
	b = append(b, `},"subscribe":`...)
	b = strconv.AppendBool(b, g.rng.IntN(2) == 0)
	return append(b, '}')
}

// Result returns the server's answer to a query with the given id: a list
// of objects with nested fields, its size varying by kind.
func (g *Generator) Result(id int, kind string) []byte {
	b := make([]byte, 0, 2048)
	b = append(b, `{"type":"result","id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, `,"op":"`...)
	b = append(b, kind...)
	b = append(b, `","data":[`...)
	for i, n := 0, 1+g.rng.IntN(8); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = g.appendObject(b)
	}
	b = append(b, `],"version":`...)
	b = strconv.AppendInt(b, int64(g.rng.Uint32()), 10)
	return append(b, '}')
}

// Update returns a pushed change to a subscribed object.
func (g *Generator) Update() []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"type":"update","sub":`...)
	b = strconv.AppendInt(b, int64(1+g.rng.IntN(g.seq+1)), 10)
	b = append(b, `,"changes":[`...)
	b = g.appendObject(b)
	return append(b, `]}`...)
}

// MutatingTypes are the "type" values of the messages Mutation returns.
var MutatingTypes = []string{"mutate", "write", "delete"}

// Mutation returns a client message that changes state: its "type" is one
// of MutatingTypes. The server answers it with an ack of the same id.
func (g *Generator) Mutation() []byte {
	g.seq++
	typ := MutatingTypes[g.rng.IntN(len(MutatingTypes))]
	return fmt.Appendf(nil,
		`{"type":%q,"id":%d,"op":"tasks.update","params":{"workspace":%d,"object":%d,"changes":{"completed":%t,"name":"%s"}}}`,
		typ, g.seq, 1000000+g.rng.IntN(50), g.objectID(), g.rng.IntN(2) == 0, words[g.rng.IntN(len(words))])
}

// LastID returns the id of the most recent query.
func (g *Generator) LastID() int { return g.seq }

func (g *Generator) objectID() int64 { return 1200000000000000 + g.rng.Int64N(1e12) }

func (g *Generator) appendObject(b []byte) []byte {
	b = append(b, `{"gid":"`...)
	b = strconv.AppendInt(b, g.objectID(), 10)
	b = append(b, `","resource_type":"task","name":"`...)
	b = append(b, words[g.rng.IntN(len(words))]...)
	b = append(b, ' ')
	b = append(b, words[g.rng.IntN(len(words))]...)
	b = append(b, ' ')
	b = append(b, words[g.rng.IntN(len(words))]...)
	b = append(b, `","completed":`...)
	b = strconv.AppendBool(b, g.rng.IntN(4) == 0)
	b = append(b, `,"assignee":{"gid":"`...)
	b = strconv.AppendInt(b, int64(g.user+g.rng.IntN(5)), 10)
	b = append(b, `","name":"`...)
	b = append(b, names[g.rng.IntN(len(names))]...)
	b = append(b, `"},"due_on":"2026-`...)
	b = strconv.AppendInt(b, int64(10+g.rng.IntN(3)), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(10+g.rng.IntN(18)), 10)
	b = append(b, `","modified_at":`...)
	b = strconv.AppendInt(b, 1763800000000+g.rng.Int64N(1e9), 10)
	b = append(b, `,"custom_fields":[{"gid":"`...)
	b = strconv.AppendInt(b, g.objectID(), 10)
	b = append(b, `","type":"enum","value":"`...)
	b = append(b, priorities[g.rng.IntN(len(priorities))]...)
	b = append(b, `"}],"num_subtasks":`...)
	b = strconv.AppendInt(b, int64(g.rng.IntN(12)), 10)
	return append(b, '}')
}

// Session returns the events of one whole synthetic session with n client
// queries: the open event, the connect message, then queries answered by
// results and now and then a pushed update, and a close. With MutateRate
// set, some of the n client messages are mutations answered by acks.
func (g *Generator) Session(start time.Time, n int) []session.Event {
	id := session.ID{}
	for i := range id {
		id[i] = byte(g.rng.Uint32())
	}
	var seq uint64
	evs := []session.Event{{
		Session: id, Seq: seq, Kind: session.KindOpen,
		Open: &session.Info{
			Route:       "/sync?client=web",
			Subprotocol: "sync.v3",
			Extensions:  "permessage-deflate",
			TapID:       "router-a1",
			Start:       start,
		},
	}}
	at := time.Duration(0)
	frame := func(dir session.Direction, payload []byte) {
		seq++
		at += time.Duration(1+g.rng.IntN(40)) * time.Millisecond
		evs = append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindFrame,
			Direction: dir, Opcode: session.Text, Offset: at, Payload: payload})
	}
	frame(session.ClientToServer, g.Connect())
	frame(session.ServerToClient, []byte(`{"type":"connected","id":0,"session":"`+id.String()+`"}`))
	for range n {
		if g.MutateRate > 0 && g.rng.Float64() < g.MutateRate {
			frame(session.ClientToServer, g.Mutation())
			frame(session.ServerToClient, fmt.Appendf(nil, `{"type":"ack","id":%d}`, g.LastID()))
			continue
		}
		kind := g.Kind()
		frame(session.ClientToServer, g.Query(kind))
		frame(session.ServerToClient, g.Result(g.LastID(), kind))
		if g.rng.IntN(4) == 0 {
			frame(session.ServerToClient, g.Update())
		}
	}
	seq++
	evs = append(evs, session.Event{Session: id, Seq: seq, Kind: session.KindClose,
		Offset: at + time.Millisecond, Code: 1000, ClosedBy: session.SideClient})
	return evs
}

var fields = []string{"name", "completed", "assignee", "due_on", "notes", "projects",
	"memberships", "tags", "followers", "custom_fields", "parent", "num_subtasks"}

var words = []string{"Draft", "launch", "plan", "review", "Q4", "roadmap", "fix", "onboarding",
	"budget", "sync", "design", "spec", "migration", "retro", "hiring", "metrics", "API",
	"customer", "feedback", "release"}

var names = []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov",
	"Ken Thompson", "Radia Perlman", "Leslie Lamport", "Frances Allen"}

var priorities = []string{"Low", "Medium", "High", "Urgent"}
