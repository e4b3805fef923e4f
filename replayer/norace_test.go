//go:build !race

package replayer

// raceEnabled: see race_test.go.
const raceEnabled = false
