//go:build !unix

package dirlog

import (
	"errors"
	"os"
)

func lockFile(*os.File) error {
	return errors.New("dirlog: writer lock needs flock, which this platform lacks")
}

func unlockFile(*os.File) error { return nil }
