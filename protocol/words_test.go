package protocol

import (
	"slices"
	"strings"
	"testing"
)

func TestWordsSplitRealNames(t *testing.T) {
	f := func(name string, want ...string) {
		t.Helper()
		if got := Words(name); !slices.Equal(got, want) {
			t.Errorf("Words(%q) = %q, want %q", name, got, want)
		}
	}
	f("updateTask", "update", "task")
	f("deleteMany", "delete", "many")
	f("findOneAndUpdate", "find", "one", "and", "update")
	f("tasks:update", "tasks", "update")
	f("tasks.delete", "tasks", "delete")
	f("getUser", "get", "user")
	f("listProjects", "list", "projects")
	f("markRead", "mark", "read")
	f("mark_as_read", "mark", "as", "read")
	f("UserProfileQuery", "user", "profile", "query")
	f("getUpdates", "get", "updates")
	f("HTTPServerStatus", "http", "server", "status")
	f("user.me", "user", "me")
	f("v2/tasks/list", "v", "2", "tasks", "list")
	f("kebab-case-name", "kebab", "case", "name")
	f("SCREAMING_SNAKE", "screaming", "snake")
	f("with spaces  here", "with", "spaces", "here")
	f("getOAuth2Token", "get", "o", "auth", "2", "token")
	f("ID", "id")
	f("", []string(nil)...)
	f("._-:/", []string(nil)...)
	f("déjàVu", "déjà", "vu")
}

func TestJudgeNameRealNames(t *testing.T) {
	f := func(name string, want Verdict) {
		t.Helper()
		if got := JudgeName([]byte(name)); got != want {
			t.Errorf("JudgeName(%q) = %v, want %v (words %q)", name, got, want, Words(name))
		}
	}
	f("updateTask", Mutating)
	f("deleteMany", Mutating)
	f("findOneAndUpdate", Mutating)
	f("tasks:update", Mutating)
	f("tasks.delete", Mutating)
	f("markRead", Mutating)
	f("mark_as_read", Mutating)
	f("saveDraft", Mutating)
	f("ack", Mutating)
	f("resetPassword", Mutating)
	f("commitTransaction", Mutating)
	f("DELETE", Mutating)
	f("tasks/Remove", Mutating)
	f("mutation", Mutating)
	f("getUser", Read)
	f("listProjects", Read)
	f("UserProfileQuery", Read)
	f("getUpdates", Read)
	f("searchTasks", Read)
	f("HTTPServerStatus", Read)
	f("user.me", Read)
	f("subscribe", Read)
	f("v2/tasks/list", Read)
	f("search.typeahead", Read)
	f("query", Read)
	f("tasks.subtasks", Unknown)
	f("frobnicate", Unknown)
	f("updates", Unknown)
	f("deleted", Unknown)
	f("", Unknown)
	f(strings.Repeat("x", 100)+"Delete", Mutating)
	f(strings.Repeat("get", 20), Unknown) // one long word
	f("tasks.touch", Mutating)
	// Letters servers fold to ASCII where Go does not.
	f("wrıte", Mutating)      // dotless i: Java's equalsIgnoreCase
	f("WRİTE", Mutating)      // dotted capital I, one word
	f("tasks.poﬆ", Mutating)  // the st ligature upper-cases to ST
	f("ﬁle.upſert", Mutating) // long s
	f("paß.reset", Mutating)  // sharp s
	f("ﬁnd.all", Read)
	f("déjàVu.get", Read)
}

func TestVerbListsAreDisjointLowerWords(t *testing.T) {
	read := map[string]bool{}
	for _, v := range ReadVerbs {
		read[v] = true
	}
	for _, list := range [][]string{WriteVerbs, ReadVerbs} {
		for _, v := range list {
			if w := Words(v); len(w) != 1 || w[0] != v || len(v) > maxWordLen {
				t.Errorf("verb %q is not one lower-case word", v)
			}
		}
	}
	for _, v := range WriteVerbs {
		if read[v] {
			t.Errorf("%q is both a read and a write verb", v)
		}
	}
	for _, v := range []string{"sort", "export", "name"} {
		if verbOf([]byte(v)) != Unknown {
			t.Errorf("%q must be no verb", v)
		}
	}
}

func TestJudgeNameDoesNotAllocate(t *testing.T) {
	name := []byte("findOneAndUpdateHTTPServerStatus")
	read := []byte("getUserProfileQuery")
	allocs := testing.AllocsPerRun(100, func() {
		JudgeName(name)
		JudgeName(read)
	})
	if allocs != 0 {
		t.Errorf("JudgeName allocates %v times a run", allocs)
	}
}

func TestIdentWrite(t *testing.T) {
	f := func(s string, want bool) {
		t.Helper()
		if got := identWrite([]byte(s)); got != want {
			t.Errorf("identWrite(%q) = %v, want %v", s, got, want)
		}
	}
	f("tasks.delete", true)
	f("deleteTask", true)
	f("/api/tasks/remove", true)
	f("delete", false) // one word
	f("please delete this", false)
	f("tasks.list", false)
	f(strings.Repeat("a", 60)+".delete", false) // too long
	f("550e8400-e29b-add4-a716-446655440000", false)
	f("add-set", true)
}

func FuzzWords(f *testing.F) {
	for _, s := range []string{"updateTask", "HTTPServerStatus", "v2/tasks/list", "mark_as_read", "déjàVu", "\xff\xfeA1b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		words := Words(name)
		v := JudgeName([]byte(name))
		write, read := false, false
		for _, w := range words {
			if w == "" || strings.ToLower(w) != w && isASCII(w) {
				t.Fatalf("Words(%q) has word %q", name, w)
			}
			switch verbOf([]byte(w)) {
			case Mutating:
				write = true
			case Read:
				read = true
			}
		}
		want := Unknown
		switch {
		case write:
			want = Mutating
		case read:
			want = Read
		}
		if v != want {
			t.Fatalf("JudgeName(%q) = %v, but its words %q give %v", name, v, words, want)
		}
	})
}
