package redact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestSecretNameByNormalisedWords checks the word rule over real names:
// those that must be redacted, and the near misses that must stay.
func TestSecretNameByNormalisedWords(t *testing.T) {
	f := func(name string, want bool) {
		t.Helper()
		if got := secretName(name); got != want {
			t.Errorf("secretName(%q) = %v, want %v", name, got, want)
		}
		if got := secretName([]byte(name)); got != want {
			t.Errorf("secretName([]byte(%q)) = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{
		// Headers set by auth proxies and gateways.
		"X-Forwarded-Access-Token", "X-Auth-Request-Access-Token", "X-Amzn-Oidc-Data",
		"X-Amzn-Oidc-Accesstoken", "Cf-Access-Jwt-Assertion", "X-Session-Token", "X-Api-Key",
		"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Csrf-Token", "X-XSRF-TOKEN",
		// JSON keys and query parameters, in every spelling.
		"jwt", "user_token", "apiToken", "csrfToken", "x-api-key", "access-token", "secretKey",
		"auth", "passwords", "pass", "pwd", "otp", "totp", "credentials", "creds", "userCreds",
		"token", "TOKEN", "tokens", "accessToken", "AccessToken", "ACCESS_TOKEN", "access.token",
		"access token", "refresh_token", "idToken", "id_token", "client_secret", "clientSecret",
		"api_key", "apiKey", "APIKey", "API_KEY", "apikey", "APIKEY", "apiKeys", "privateKey",
		"private_key", "accessKey", "aws_secret_access_key", "secret", "secrets", "password",
		"newPassword", "password2", "passwd", "passphrase", "passcode", "pinCode", "pin_code",
		"session", "sessionId", "session_id", "JSESSIONID", "PHPSESSID", "sessid", "signature",
		"X-Hub-Signature-256", "client_assertion", "bearer", "bearerToken", "userJwt", "userJWT",
		"JWTs", "jwtToken", "JWTToken", "oauth2Token", "usertoken", "accesstoken", "clientsecret",
		"googleapikey", "basicAuth", "authToken", "x_csrf", "_csrf", "csrf_token", "otpCode",
		"userPWD", "creds[pass]", "credentials.pass", "smsOtp", "cookies", "authorization_code",
		"access_tokens", "page_token_secret",
	} {
		f(name, true)
	}
	for _, name := range []string{
		// Near misses: whole words that are not secret words.
		"author", "authors", "authority", "authored", "authentication", "authenticated",
		"tokenize", "tokenizer", "keyboard", "passage", "passenger", "passport", "compass",
		"bypass", "design", "assignee", "signal", "signed", "monkey", "oauth", "otpauth",
		// Bare key, pin and the words that count only before key.
		"key", "keys", "Sec-WebSocket-Key", "sort_key", "public_key", "publicKey", "primaryKey",
		"cache_key", "pin", "pinned", "access", "private", "api", "accessLevel", "private_channel",
		// The allowed phrases.
		"token_type", "tokenType", "TokenType", "next_page_token", "nextPageToken", "pageToken",
		"page_token", "auth_type", "authType", "max_tokens", "maxTokens",
		// Ordinary names.
		"type", "id", "name", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "X-Request-Id",
		"Cf-Access-Authenticated-User-Email", "User-Agent", "", "-", "__", "名前", "s\u00e9ssion",
		"api2key", "api__key",
	} {
		f(name, false)
	}
}

// TestWordRuleMatchesThePrecheck checks, over names the word rule finds
// secret, that the pre-check sees them in a JSON document and Payload
// replaces their values.
func TestWordRuleMatchesThePrecheck(t *testing.T) {
	r := mustNew(t, nil)
	for _, name := range []string{
		"jwt", "userJwt", "x_jwt", "X-JWT", "JWTs", "pwd", "newPwd", "otp", "smsOTP", "totp", "pass",
		"userPass", "auth", "basicAuth", "oidc", "x-amzn-oidc-data", "csrf", "_csrf", "xsrf",
		"api_key", "apiKey", "api.key", "api key", "privateKey", "access-key", "pin_code", "pinCode",
		"creds", "jsessionid", "phpsessid", "bearer", "assertion", "passphrase", "passcode",
	} {
		doc, _ := json.Marshal(map[string]string{name: "s3cr3t"})
		if !r.pre.maybe(doc) {
			t.Errorf("the pre-check misses %s", doc)
		}
		out, res := r.Payload(nil, doc, false)
		if strings.Contains(string(out), "s3cr3t") || res.Fields != 1 {
			t.Errorf("Payload(%s) = %s %+v", doc, out, res)
		}
	}
}

// FuzzSecretName checks that the word rule never panics and that wherever
// it finds a JSON key secret, however the key is escaped, the pre-check
// lets Payload see it and Payload replaces its value.
func FuzzSecretName(f *testing.F) {
	for _, s := range []string{"jwt", "userJWT", "X-Api-Key", "token_type", "APIKey", "JWTs", "a_b-c.d e", "x\u212aey", "api\u00e9key"} {
		f.Add(s, false)
	}
	r := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, name string, escape bool) {
		secret := secretName(name)
		if secret != secretName([]byte(name)) {
			t.Fatalf("secretName(%q) differs for string and bytes", name)
		}
		var doc []byte
		if escape { // every character as \uXXXX (the low 16 bits of it)
			doc = []byte(`{"`)
			for _, c := range name {
				doc = fmt.Appendf(doc, `\u%04X`, c&0xffff)
			}
			doc = append(doc, `":"v4lu3"}`...)
		} else {
			var err error
			if doc, err = json.Marshal(map[string]string{name: "v4lu3"}); err != nil {
				return
			}
		}
		var decoded map[string]string
		if json.Unmarshal(doc, &decoded) != nil {
			return
		}
		for key := range decoded {
			if !secretName(strings.NewReplacer("\u212a", "k", "\u017f", "s").Replace(key)) {
				return
			}
		}
		out, res := r.Payload(nil, doc, false)
		if strings.Contains(string(out), "v4lu3") {
			t.Fatalf("Payload(%s) = %s %+v: the value of a secret key is left", doc, out, res)
		}
	})
}
