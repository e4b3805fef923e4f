//go:build race

package replayer

// raceEnabled is set when tests run with the race detector, under which
// sync.Pool drops items on purpose: encoding/json's pooled scanner is then
// allocated again now and then, and allocation counts mean nothing.
const raceEnabled = true
