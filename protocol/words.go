package protocol

import (
	"unicode"
	"unicode/utf8"
)

// WriteVerbs are the words that make an operation name Mutating wherever
// they stand in it: "updateTask", "tasks:delete", "findOneAndUpdate" and
// "mark_as_read" all write. A word matches only whole and in any case; there
// is no stemming, so "updates" and "deleted" are not write verbs. The list is
// wide on purpose: a read taken for a write is only not replayed, a write
// taken for a read changes the target. Some entries are also common nouns
// ("post", "comment", "tag", "book"), so a name such as "getPost" is judged
// Mutating; an operator allows such names with a rule in package replayer.
// Changing the slice at run time has no effect on JudgeName.
var WriteVerbs = []string{
	"create", "update", "delete", "del", "remove", "rm", "write", "mutate",
	"mutation", "insert", "upsert", "set", "put", "patch", "post", "add",
	"move", "archive", "unarchive", "send", "save", "rename", "cancel",
	"submit", "edit", "commit", "destroy", "purge", "reset", "ack", "mark",
	"change", "modify", "replace", "append", "assign", "unassign", "publish",
	"unpublish", "approve", "reject", "invite", "join", "leave", "kick",
	"ban", "unban", "block", "unblock", "mute", "unmute", "follow",
	"unfollow", "like", "unlike", "vote", "star", "unstar", "pin", "unpin",
	"lock", "unlock", "enable", "disable", "toggle", "restore", "import",
	"upload", "transfer", "pay", "charge", "refund", "book", "register",
	"unregister", "signup", "grant", "revoke", "increment", "decrement",
	"incr", "decr", "merge", "clear", "drop", "truncate", "flush", "store",
	"apply", "execute", "exec", "run", "trigger", "dispatch", "notify",
	"broadcast", "share", "unshare", "copy", "clone", "duplicate",
	"schedule", "reschedule", "confirm", "accept", "decline", "deny",
	"dismiss", "hide", "unhide", "reopen", "close", "complete", "resolve",
	"reorder", "push", "pop", "enqueue", "dequeue", "claim", "release",
	"link", "unlink", "attach", "detach", "tag", "untag", "react", "reply",
	"comment", "kill", "stop", "start", "restart", "deploy", "provision",
	"install", "uninstall", "sync", "erase", "wipe", "activate", "touch",
	"deactivate", "logout", "signout", "upvote", "downvote", "favorite",
	"favourite", "unfavorite",
}

// ReadVerbs are the words that make an operation name Read when it holds no
// write verb: "getUser", "listProjects", "UserProfileQuery", "user.me". Like
// WriteVerbs they match whole words in any case. "sort", "export" and
// "resolve" are deliberately absent: the first two are not safe signs of a
// read, and "resolve" is a write verb. Changing the slice at run time has no
// effect on JudgeName.
var ReadVerbs = []string{
	"get", "list", "query", "fetch", "read", "load", "find", "search",
	"count", "subscribe", "unsubscribe", "subscription", "watch", "unwatch",
	"view", "show", "lookup", "describe", "check", "exists", "has", "is",
	"peek", "browse", "poll", "stream", "preview", "inspect", "stat",
	"stats", "summary", "select", "scan", "history", "me", "whoami", "ping",
	"info", "status", "typeahead", "autocomplete", "suggest",
}

// verbs gives each verb the verdict it gives a name.
var verbs = func() *wordTable {
	t := &wordTable{}
	for _, w := range ReadVerbs {
		t.add(w, int(Read))
	}
	for _, w := range WriteVerbs {
		t.add(w, int(Mutating)) // a word in both lists would write
	}
	return t
}()

// maxWordLen bounds the words looked up in a wordTable: no verb or op key
// is longer.
const maxWordLen = 16

// A wordTable maps short lower-case ASCII words to ints: it is a
// map that needs no hashing, which is most of a map's cost on words this
// short. Words are filed by first letter and length; a lookup compares the
// few words of one bin.
type wordTable [26][maxWordLen + 1][]wordEntry

type wordEntry struct {
	word string
	val  int
}

// add files word, which must be lower-case ASCII starting with a letter and
// at most maxWordLen long, replacing its value if it is there.
func (t *wordTable) add(word string, v int) {
	bin := &t[word[0]-'a'][len(word)]
	for i := range *bin {
		if (*bin)[i].word == word {
			(*bin)[i].val = v
			return
		}
	}
	*bin = append(*bin, wordEntry{word, v})
}

// get returns the value of word, lower-cased as it is compared, and
// whether it is filed.
func (t *wordTable) get(word []byte) (int, bool) {
	if len(word) == 0 || len(word) > maxWordLen {
		return 0, false
	}
	var buf [maxWordLen]byte
	n := lower(buf[:], word)
	c := buf[0] - 'a'
	if c >= 26 {
		return 0, false
	}
	for _, e := range t[c][n] {
		if e.word == string(buf[:n]) {
			return e.val, true
		}
	}
	return 0, false
}

// Character classes for splitting names into words.
const (
	classSep uint8 = iota
	classLower
	classUpper
	classDigit
)

var classes = func() (t [128]uint8) {
	for c := range 128 {
		switch {
		case c >= 'a' && c <= 'z':
			t[c] = classLower
		case c >= 'A' && c <= 'Z':
			t[c] = classUpper
		case c >= '0' && c <= '9':
			t[c] = classDigit
		}
	}
	return t
}()

// classAt returns the class of the character at s[i] and its length. A
// character outside ASCII is a letter, of its own case ("déjàVu" splits
// before V; "WRİTE" is one word, as a server that folds İ to I reads it).
func classAt(s []byte, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return classes[c], 1
	}
	r, n := utf8.DecodeRune(s[i:])
	if unicode.IsUpper(r) {
		return classUpper, n
	}
	return classLower, n
}

// wordIter walks the words of a name without allocating.
type wordIter struct {
	s []byte
	i int
}

// next returns the bounds of the next word, ok false after the last. A word
// ends at a separator (any ASCII byte that is not a letter or digit), where
// a digit run starts or ends, before an upper-case letter that follows a
// lower-case one ("getUser"), and before the last capital of an acronym that
// a lower-case letter follows ("HTTPServer" is "HTTP", "Server").
func (w *wordIter) next() (start, end int, ok bool) {
	s := w.s
	i := w.i
	var c uint8
	n := 0
	for i < len(s) {
		if c, n = classAt(s, i); c != classSep {
			break
		}
		i += n
	}
	if i >= len(s) {
		w.i = i
		return 0, 0, false
	}
	start = i
	p := c
	for i += n; i < len(s); i += n {
		c, n = classAt(s, i)
		if c == classSep || (c == classDigit) != (p == classDigit) {
			break
		}
		if c == classUpper && p == classLower {
			break
		}
		if c == classUpper && p == classUpper && i+n < len(s) {
			if next, _ := classAt(s, i+n); next == classLower {
				break
			}
		}
		p = c
	}
	w.i = i
	return start, i, true
}

// Words splits an operation name into lower-case words, as JudgeName sees
// them: camelCase, PascalCase, snake_case, kebab-case, dotted, colon- and
// slash-separated names and spaces all split, and digits split off
// ("HTTPServerStatus" is http, server, status; "v2/tasks/list" is v, 2,
// tasks, list). It allocates; it is for tests and documentation.
func Words(name string) []string {
	var out []string
	it := wordIter{s: []byte(name)}
	for {
		start, end, ok := it.next()
		if !ok {
			return out
		}
		b := []byte(name[start:end])
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		out = append(out, string(b))
	}
}

// JudgeName gives the verdict of an operation name: Mutating when any of its
// words is a write verb, Read when it has a read verb and no write verb,
// Unknown otherwise. It does not allocate.
func JudgeName(name []byte) Verdict {
	read := false
	it := wordIter{s: name}
	for {
		start, end, ok := it.next()
		if !ok {
			break
		}
		switch verbOf(name[start:end]) {
		case Mutating:
			return Mutating
		case Read:
			read = true
		}
	}
	if read {
		return Read
	}
	return Unknown
}

// verbOf returns the verdict the word gives a name: Mutating for a write
// verb, Read for a read verb, Unknown for any other word.
func verbOf(word []byte) Verdict {
	v, _ := verbs.get(word)
	return Verdict(v)
}

// lower copies s into dst in ASCII lower case and returns its length; dst
// must be as long as s. The letters that servers' case-insensitive
// comparisons take for ASCII, where Go's folding does not, are folded to
// it: Java's equalsIgnoreCase takes dotless ı and dotted İ for i, the full
// upper-casing of Java, JavaScript and Python turns ß into SS and the Latin
// ligatures into their letters ("poﬆ" into "POST"), and long ſ is s. So
// "wrıte" and "upſert" are judged as the writes a server reads them as.
// Folding never lengthens a word.
func lower(dst, s []byte) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst[n] = c
			n++
			continue
		}
		if f, size := foldRune(s[i:]); size > 0 {
			n += copy(dst[n:], f)
			i += size - 1
			continue
		}
		dst[n] = c
		n++
	}
	return n
}

// foldRune returns the ASCII a server's comparison reads the character at
// the start of s as, and the character's length; size 0 when it is not one
// of those.
func foldRune(s []byte) (string, int) {
	if len(s) < 2 {
		return "", 0
	}
	switch {
	case s[0] == 0xc4 && (s[1] == 0xb1 || s[1] == 0xb0): // ı İ
		return "i", 2
	case s[0] == 0xc3 && s[1] == 0x9f: // ß
		return "ss", 2
	case s[0] == 0xc5 && s[1] == 0xbf: // ſ
		return "s", 2
	case len(s) >= 3 && s[0] == 0xe1 && s[1] == 0xba && s[2] == 0x9e: // ẞ
		return "ss", 3
	case len(s) >= 3 && s[0] == 0xef && s[1] == 0xac && s[2] >= 0x80 && s[2] <= 0x86: // ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ
		return [...]string{"ff", "fi", "fl", "ffi", "ffl", "st", "st"}[s[2]-0x80], 3
	}
	return "", 0
}

// identWrite reports whether s is shaped like an identifier (at most
// maxIdentLen bytes, no whitespace or control bytes, at least two words) and
// holds a write verb: "tasks.delete", "/api/tasks/remove", "deleteTask".
// Hex strings with a digit and dashes (UUIDs, hashes) are data, not names,
// though "add" can be read in them.
func identWrite(s []byte) bool {
	if len(s) == 0 || len(s) > maxIdentLen {
		return false
	}
	hex, digit := true, false
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return false
		}
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '-':
		default:
			hex = false
		}
	}
	if hex && digit {
		return false
	}
	words, write := 0, false
	it := wordIter{s: s}
	for {
		start, end, ok := it.next()
		if !ok {
			break
		}
		words++
		if !write && verbOf(s[start:end]) == Mutating {
			write = true
		}
	}
	return write && words >= 2
}

// maxIdentLen bounds the values identWrite takes for identifiers, in bytes.
const maxIdentLen = 64
