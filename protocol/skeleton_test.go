package protocol

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// skeletonCases are server message sequences of every profile; the binary
// ones start with 0xff.
var skeletonCases = [][]string{
	{`{"type":"result","id":7,"op":"tasks.list","data":[{"gid":"1","name":"x"}],"version":3}`, `{"type":"ping"}`, `{"op":"KeepAlive"}`, `not json`, `[1,2]`},
	{`{"id":"1","type":"next","payload":{"data":{"a":[1,2,3]}}}`, `{"type":"ka"}`, `{"type":"ping","payload":{}}`, `{"type":"pong"}`, `{"type":"complete","id":"1"}`},
	{`{"jsonrpc":"2.0","id":3,"result":{"rows":[1,2]}}`, `{"jsonrpc":"2.0","id":4,"error":{"code":-1}}`, `{"jsonrpc":"2.0","method":"notify","params":[1]}`, `{"jsonrpc":"2.0","id":5}`},
	{`0{"sid":"x"}`, `40{"sid":"y"}`, `2`, `2probe`, `3`, `6`, `430["ok",{"rows":[1,2]}]`, `43/admin,12["ok"]`, `42["news",{"a":1}]`, `461-7[{"_placeholder":true,"num":0}]`, "\xffbin", `42/chat`, `4x`, `5`},
	{` { "id" : 1 , "type" : "result" , "Id" : 2 , "i\u0064" : 3 , "id" : 4 } `, `{"type":{"nested":"ping"},"op":["ka"],"id":null}`, `{"method":null,"result":null}`, `{"type":"p\u0069ng"}`, `{"":1,"type":"PING"}`, `{}`, `{`, ``},
}

// feed splits a case into messages and their binary flags.
func feed(msgs []string) (out [][]byte, binary []bool) {
	for _, m := range msgs {
		b := []byte(m)
		bin := len(b) > 0 && b[0] == 0xff
		if bin {
			b = b[1:]
		}
		out, binary = append(out, b), append(binary, bin)
	}
	return out, binary
}

// checkSkeletons feeds msgs and their skeletons to two conversations of
// every built-in profile and fails unless each message and its skeleton
// are classified alike: the same Heartbeat, ID and Answer, message after
// message (Socket.IO's attachments follow their packet's id).
func checkSkeletons(t *testing.T, msgs [][]byte, binary []bool) {
	t.Helper()
	skels := make([][]byte, len(msgs))
	for i, m := range msgs {
		skels[i] = ServerSkeleton(nil, m)
		if len(skels[i]) > len(m) {
			t.Fatalf("skeleton %q of %q is longer", skels[i], m)
		}
		if again := ServerSkeleton([]byte("x"), skels[i]); string(again) != "x"+string(skels[i]) {
			t.Fatalf("skeleton %q of %q is not its own skeleton: %q", skels[i], m, again[1:])
		}
	}
	for _, p := range NewSet(nil).profiles {
		full, skel := p.NewConversation(), p.NewConversation()
		for i, m := range msgs {
			want, got := full.Server(m, binary[i]), skel.Server(skels[i], binary[i])
			if !sameServerMessage(got, want) {
				t.Fatalf("%s: message %d %q (binary %t): skeleton %q classified %s, the message %s",
					p.Name(), i, m, binary[i], skels[i], showServerMessage(got), showServerMessage(want))
			}
		}
	}
}

func sameServerMessage(a, b ServerMessage) bool {
	return a.Heartbeat == b.Heartbeat && bytes.Equal(a.ID, b.ID) && (a.ID == nil) == (b.ID == nil) &&
		bytes.Equal(a.Answer, b.Answer) && (a.Answer == nil) == (b.Answer == nil) && a.AnswerBinary == b.AnswerBinary
}

func showServerMessage(m ServerMessage) string {
	return fmt.Sprintf("{heartbeat %t, id %q (nil %t), answer %q}", m.Heartbeat, m.ID, m.ID == nil, m.Answer)
}

func TestServerSkeletonClassifiesAsTheMessage(t *testing.T) {
	for _, c := range skeletonCases {
		msgs, binary := feed(c)
		checkSkeletons(t, msgs, binary)
	}
	// json.Valid refuses more than 10,000 levels of nesting, the object's
	// own included.
	deep := func(n int) string {
		return `{"id":1,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	msgs, binary := feed([]string{deep(9999), deep(10000)})
	checkSkeletons(t, msgs, binary)
	if s := ServerSkeleton(nil, msgs[0]); string(s) != `{"id":1}` {
		t.Errorf("10,000 levels: skeleton %q", s)
	}
	if s := ServerSkeleton(nil, msgs[1]); len(s) != 0 {
		t.Errorf("10,001 levels: skeleton %q", s)
	}
}

func TestServerSkeletonKeepsOnlyWhatIsRead(t *testing.T) {
	f := func(msg, want string) {
		t.Helper()
		if got := ServerSkeleton(nil, []byte(msg)); string(got) != want {
			t.Errorf("ServerSkeleton(%q) = %q, want %q", msg, got, want)
		}
	}
	f(`{"type":"result","id":7,"op":"tasks.list","data":[{"gid":"1"}],"version":3}`, `{"type":"result","id":7,"op":"tasks.list"}`)
	f(` {"id": "1", "type": "next", "payload": {"data": {}}} `, `{"id":"1","type":"next"}`)
	f(`{"jsonrpc":"2.0","id":3,"result":{"rows":[1,2]}}`, `{"id":3,"result":0}`)
	f(`{"type":{"a":1},"op":[1],"method":"m","error":{"code":1},"id":1,"id":2}`, `{"type":0,"op":0,"method":0,"error":0,"id":1,"id":2}`)
	f(`{"i\u0064":1,"ID":2}`, `{}`)
	f(`{"type":"x"`, ``) // not JSON: nothing a profile reads
	f(`430["ok",{"rows":[1,2]}]`, `430`)
	f(`43/admin,12["ok"]`, `43/admin,12`)
	f(`461-7[{"_placeholder":true,"num":0}]`, `461-7`)
	f(`2probe`, `2probe`)
	f(`3probe`, `3`)
	f(`0{"sid":"x","pingInterval":25000}`, ``)
	f(`[1,2]`, ``)
	f(``, ``)
}

func FuzzServerSkeleton(f *testing.F) {
	for _, c := range skeletonCases {
		f.Add([]byte(string(bytes.Join(func() [][]byte {
			var out [][]byte
			for _, m := range c {
				out = append(out, []byte(m))
			}
			return out
		}(), []byte{'\n'}))))
	}
	// A fuzzed input is messages separated by newlines, a binary one
	// starting with 0xff.
	f.Fuzz(func(t *testing.T, in []byte) {
		var c []string
		for m := range bytes.SplitSeq(in, []byte{'\n'}) {
			c = append(c, string(m))
		}
		msgs, binary := feed(c)
		checkSkeletons(t, msgs, binary)
	})
}

func BenchmarkServerSkeleton(b *testing.B) {
	msg := []byte(skeletonCases[0][0])
	msg = append(msg[:len(msg)-1], []byte(`,"more":[`+string(bytes.Repeat([]byte(`{"gid":"1200000012345678","name":"Draft launch plan","done":false},`), 20))+`{}]}`)...)
	b.SetBytes(int64(len(msg)))
	var dst []byte
	for b.Loop() {
		dst = ServerSkeleton(dst[:0], msg)
	}
}
