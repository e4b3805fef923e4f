package protocol

import (
	"testing"
)

var socketIOCases = []judgeCase{
	{msg: `2probe`, role: Control, verdict: Read},
	{msg: `5`, role: Control, verdict: Read},
	{msg: `40`, role: Control, verdict: Read},
	{msg: `40{"token":"abc"}`, role: Control, verdict: Read},
	{msg: `40/admin,{"token":"abc"}`, role: Control, verdict: Read},
	{msg: `42["tasks:update",{"id":1,"done":true}]`, verdict: Mutating, kind: "tasks:update"},
	{msg: `420["getTask",{"id":1}]`, verdict: Read, kind: "getTask", id: "0"},
	{msg: `42/admin,7["list",{}]`, verdict: Read, kind: "list", id: "/admin,7"},
	{msg: `42/admin,["list"]`, verdict: Read, kind: "list"},
	{msg: `42["search",{"q":"quarterly plan"}]`, verdict: Read, kind: "search"},
	{msg: `42["query",{"op":"tasks.delete"}]`, verdict: Mutating, kind: "query"},
	{msg: `42["getTask",{"then":"deleteTask"}]`, verdict: Mutating, kind: "getTask"},
	{msg: `42["chat message","hi"]`, kind: "chat message"},
	{msg: `42["sav\u0065",{}]`, verdict: Mutating, kind: `sav\u0065`},
	{msg: `42[1,2]`, kind: "1"},
	// A binary event and its attachment.
	{msg: `451-["upload",{"_placeholder":true,"num":0}]`, verdict: Mutating, kind: "upload"},
	{msg: "\x89PNG\r\n", binary: true, verdict: Mutating, kind: "upload"},
	{msg: "\x00more", binary: true},
	{msg: `452-3["getThumbnails",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, verdict: Read, kind: "getThumbnails", id: "3"},
	{msg: "a", binary: true, verdict: Read, kind: "getThumbnails"},
	{msg: "b", binary: true, verdict: Read, kind: "getThumbnails"},
	// Replies: acks and their attachments, and pongs.
	{msg: `431["ok"]`, role: Reply, id: "1"},
	{msg: `43/admin,2[]`, role: Reply, id: "/admin,2"},
	{msg: `461-5[{"_placeholder":true,"num":0}]`, role: Reply, id: "5"},
	{msg: "blob", binary: true, role: Reply},
	{msg: `3`, role: Reply},
	{msg: `41`, role: Control, verdict: Read},
	{msg: `41/admin,`, role: Control, verdict: Read},
	{msg: `1`, role: Control, verdict: Read},
	{msg: `6`, role: Control, verdict: Read},
	// Malformed.
	{msg: `42`},
	{msg: `42[]`},
	{msg: `42{"a":1}`},
	{msg: `42["getTask"`},
	{msg: `4`},
	{msg: `47["x"]`},
	{msg: `45["upload"]`},
	{msg: `44{"message":"no"}`},
	{msg: `0{"sid":"x"}`},
	{msg: `x`},
	{msg: ``},
}

func TestSocketIOJudgesPackets(t *testing.T) {
	checkJudgements(t, lookup(t, "socket.io"), socketIOCases)
}

func TestSocketIOTextEndsAttachments(t *testing.T) {
	checkJudgements(t, lookup(t, "socket.io"), []judgeCase{
		{msg: `452-["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, verdict: Mutating, kind: "upload"},
		{msg: "a", binary: true, verdict: Mutating, kind: "upload"},
		{msg: `420["getTask",{"id":1}]`, verdict: Read, kind: "getTask", id: "0"},
		{msg: "b", binary: true},
	})
}

func TestSocketIOServerMessages(t *testing.T) {
	conv := lookup(t, "socket.io").NewConversation()
	f := func(msg string, binary, heartbeat bool, answer, id string) {
		t.Helper()
		sm := conv.Server([]byte(msg), binary)
		if sm.Heartbeat != heartbeat || string(sm.Answer) != answer || string(sm.ID) != id || sm.AnswerBinary {
			t.Errorf("Server(%q) = %+v, want heartbeat %v, answer %q, id %q", msg, sm, heartbeat, answer, id)
		}
	}
	f(`0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}`, false, false, "", "")
	f(`40{"sid":"def"}`, false, false, "", "")
	f(`2`, false, true, "3", "")
	f(`3probe`, false, true, "", "")
	f(`42["tasks:changed",{"id":1}]`, false, false, "", "")
	f(`430[{"id":1,"title":"x"}]`, false, false, "", "0")
	f(`43/admin,7[{}]`, false, false, "", "/admin,7")
	f(`461-4[{"_placeholder":true,"num":0}]`, false, false, "", "4")
	f("\x01\x02", true, false, "", "4")
	f("\x01\x02", true, false, "", "")
	f(`451-["thumb",{"_placeholder":true,"num":0}]`, false, false, "", "")
	f("\x03", true, false, "", "")
	f(`6`, false, true, "", "")
	f(``, false, false, "", "")
}

func FuzzSocketIO(f *testing.F) {
	for _, c := range socketIOCases {
		f.Add([]byte(c.msg), c.binary)
	}
	p := lookup(f, "socket.io")
	conv := p.NewConversation()
	f.Fuzz(func(t *testing.T, msg []byte, binary bool) {
		j := conv.Client(msg, binary)
		if !binary && j.Verdict == Read && j.Role == Operation {
			pk, ok := parseSocketIO(msg[1:])
			if msg[0] != '4' || !ok || (pk.typ != sioEvent && pk.typ != sioBinaryEvent) {
				t.Fatalf("Client(%q) = Read (%s), but it is no event", msg, j.Reason)
			}
			if JudgeName(j.Kind) == Mutating {
				t.Fatalf("Client(%q) = Read, but its event %q writes", msg, j.Kind)
			}
		}
		conv.Server(msg, binary)
	})
}
