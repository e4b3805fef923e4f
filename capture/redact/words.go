package redact

// The word rule decides by its words whether a name (a header name, a query
// parameter name or a JSON key) holds a secret, so that names nobody
// configured, such as X-Forwarded-Access-Token, userJwt or csrfToken, are
// redacted too.
//
// A name is cut into words at every byte that is not an ASCII letter or
// digit, between letters and digits, and at case changes: "apiToken" is
// api+token, "APIKey" is api+key, "X-Amzn-Oidc-Data" is x+amzn+oidc+data.
// An upper-case run followed by a lone lower-case s is one plural word
// ("JWTs"). Words are compared in lower case, and a final s is dropped from
// a word of four or more letters that does not end in ss ("tokens",
// "credentials"). Bytes outside ASCII separate words.
//
// The name is secret when any word is a secret word of wordList, when a word of
// its own ends in one of compoundSuffixes ("accesstoken", "clientsecret",
// "jsessionid"), or when two adjacent words form one of the pairs
// (api/access/private/secret + key, pin + code). Two words are adjacent
// when only a case or letter-digit change, or exactly one of - _ . and
// space, stands between them. A word that an allowed phrase neutralises
// does not count (see allowed phrases below).
//
// Bare "key" is not a secret word: {"key":"tasks"}, Sec-WebSocket-Key and
// sort keys are everywhere. Bare "pin" is not either: it is the pin/unpin
// of messaging apps far more often than a PIN, so only "pin code" counts;
// an operator adds "pin" where it is a PIN. "private" and "access" count
// only before "key", since {"private":true} is a channel flag. Whole words
// keep near misses readable: "author", "tokenize", "keyboard", "passage",
// "design" and "assignee" are single words that are not secret words.

// Word flags.
const (
	wSecret  uint16 = 1 << iota // a secret word on its own
	wPartner                    // makes a following "key" secret
	wKey                        // key
	wPin                        // pin, secret before "code"
	wCode                       // code
	wToken                      // token, neutralised by "page" before or "type" after
	wAuth                       // auth, neutralised by "type" after
	wType                       // type
	wPage                       // page
	wMax                        // max
)

// wordList holds the words the rule looks at: the secret words, which make
// a name secret on their own, and the others with their part in a pair or
// an allowed phrase.
//
// The allowed phrases, each neutralising its secret word, are kept short:
//   - token type (OAuth's token_type is "Bearer", never a credential);
//   - page token (pageToken, next_page_token: pagination cursors, which
//     authenticate nothing);
//   - auth type (authType, auth_type: the name of a scheme);
//   - max token (max_tokens: a model's output limit, which a replay must
//     send as it was).
var wordList = []struct {
	word  string
	flags uint16
}{
	{"token", wSecret | wToken}, {"auth", wSecret | wAuth}, {"secret", wSecret | wPartner},
	{"password", wSecret}, {"passwd", wSecret}, {"passphrase", wSecret}, {"passcode", wSecret},
	{"pass", wSecret}, {"pwd", wSecret}, {"jwt", wSecret}, {"authorization", wSecret},
	{"credential", wSecret}, {"creds", wSecret}, {"session", wSecret}, {"sessid", wSecret},
	{"sessionid", wSecret}, {"cookie", wSecret}, {"apikey", wSecret}, {"accesskey", wSecret},
	{"privatekey", wSecret}, {"secretkey", wSecret}, {"signature", wSecret},
	{"assertion", wSecret}, {"oidc", wSecret}, {"bearer", wSecret}, {"csrf", wSecret},
	{"xsrf", wSecret}, {"otp", wSecret}, {"totp", wSecret}, {"pincode", wSecret},
	{"api", wPartner}, {"access", wPartner}, {"private", wPartner},
	{"key", wKey}, {"pin", wPin}, {"code", wCode}, {"type", wType}, {"page", wPage}, {"max", wMax},
}

var (
	wordMap = map[string]uint16{}
	// wordBins has bit n of entry c set when some word of wordList starts
	// with 'a'+c and is n bytes long, or n-1 (its plural): most words are
	// ruled out without a map lookup.
	wordBins [26]uint32
)

func init() {
	for _, w := range wordList {
		wordMap[w.word] = w.flags
		wordBins[w.word[0]-'a'] |= 1<<len(w.word) | 1<<(len(w.word)+1)
	}
}

// wordFlags returns the flags of a word given in lower case, not counting
// its plural or compounds.
func wordFlags(w []byte) uint16 {
	if len(w) < 31 && w[0] >= 'a' && wordBins[w[0]-'a']&(1<<len(w)) != 0 {
		return wordMap[string(w)]
	}
	return 0
}

// compoundSuffixes make a single word secret when it ends in one of them
// and is longer: "accesstoken", "usertoken", "clientsecret", "newpassword",
// "googleapikey", "jsessionid", "phpsessid".
var compoundSuffixes = []string{
	"token", "secret", "password", "passwd", "apikey", "accesskey",
	"privatekey", "secretkey", "sessionid", "sessid",
}

// lookupWord returns the flags of a word given in lower case.
func lookupWord(w []byte) uint16 {
	n := len(w)
	if n < 3 || w[0] < 'a' {
		return 0 // too short, or digits
	}
	if f := wordFlags(w); f != 0 {
		return f
	}
	if n >= 4 && w[n-1] == 's' && w[n-2] != 's' {
		if f := wordFlags(w[:n-1]); f != 0 {
			return f
		}
		// A plural compound: "accesstokens".
		if n > 6 && hasCompoundSuffix(w[:n-1]) {
			return wSecret
		}
	}
	if n > 5 && hasCompoundSuffix(w) {
		return wSecret
	}
	return 0
}

func hasCompoundSuffix(w []byte) bool {
	// Every suffix ends in n, t, d or y: most words are ruled out by their
	// last letter.
	switch w[len(w)-1] {
	case 'n', 't', 'd', 'y':
	default:
		return false
	}
	for _, s := range compoundSuffixes {
		if len(w) > len(s) && string(w[len(w)-len(s):]) == s {
			return true
		}
	}
	return false
}

// Character classes of the word splitter.
const (
	clsSep = iota
	clsLower
	clsUpper
	clsDigit
)

var charClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = clsLower
		t[c-'a'+'A'] = clsUpper
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	return t
}()

// isAdjacencySep reports whether c, alone between two words, keeps them
// adjacent.
func isAdjacencySep(c byte) bool { return c == '-' || c == '_' || c == '.' || c == ' ' }

// maxWordLen bounds the part of a word compared with the lists; a longer
// word is judged by its last maxWordLen bytes, which is all the suffix
// rule looks at.
const maxWordLen = 32

// secretName reports whether name is secret by the word rule. name is the
// decoded name: for a JSON key, its escapes are decoded and the Kelvin sign
// and long s are mapped to k and s. It does not allocate.
func secretName[T text](name T) bool {
	var st wordState
	st.prevEnd = -2
	start := -1
	for i := 0; i < len(name); i++ {
		c := charClass[name[i]]
		if start < 0 {
			if c != clsSep {
				start = i
			}
			continue
		}
		p := charClass[name[i-1]]
		switch {
		case c == clsSep:
			if nextWord(&st, name, start, i) {
				return true
			}
			start = -1
		case (p == clsDigit) != (c == clsDigit), p == clsLower && c == clsUpper:
			if nextWord(&st, name, start, i) {
				return true
			}
			start = i
		case p == clsUpper && c == clsLower && i-1 > start:
			// "APIKey": the last capital starts the next word, unless the
			// lower-case letter is a plural s ending the word ("JWTs").
			if name[i] == 's' && (i+1 == len(name) || charClass[name[i+1]] != clsLower) {
				continue
			}
			if nextWord(&st, name, start, i-1) {
				return true
			}
			start = i - 1
		}
	}
	if start >= 0 && nextWord(&st, name, start, len(name)) {
		return true
	}
	return st.pending
}

// wordState is what secretName knows of the words before.
type wordState struct {
	prev    uint16 // flags of the previous word
	prevEnd int    // where it ended
	pending bool   // it is secret unless the next word neutralises it
}

// nextWord takes the word name[start:end] into st and reports whether the
// name is secret whatever follows.
func nextWord[T text](st *wordState, name T, start, end int) bool {
	var f uint16
	// Most words are ruled out by their first letter, length and last
	// letter, without folding them.
	if n := end - start; n >= 3 {
		c0, last := name[start]|0x20, name[end-1]|0x20
		if 'a' <= c0 && c0 <= 'z' && (n < 31 && wordBins[c0-'a']&(1<<n) != 0 ||
			n > 5 && (last == 'n' || last == 't' || last == 'd' || last == 'y' || last == 's')) {
			var buf [maxWordLen]byte
			from := max(start, end-maxWordLen)
			for i := from; i < end; i++ {
				c := name[i]
				buf[i-from] = c | 0x20*(c>>6&1) // letters only: digits have bit 6 clear
			}
			f = lookupWord(buf[:end-from])
		}
	}
	if start == st.prevEnd || start == st.prevEnd+1 && isAdjacencySep(name[st.prevEnd]) {
		switch {
		case st.prev&wPartner != 0 && f&wKey != 0, st.prev&wPin != 0 && f&wCode != 0:
			return true
		case st.pending && f&wType != 0 && st.prev&(wToken|wAuth) != 0:
			st.pending = false
		}
		if f&wToken != 0 && st.prev&(wPage|wMax) != 0 {
			f &^= wSecret
		}
	}
	if st.pending {
		return true
	}
	st.pending = f&wSecret != 0
	st.prev, st.prevEnd = f, end
	return false
}
