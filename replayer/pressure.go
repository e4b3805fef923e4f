package replayer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// DefaultPressureFile is where Linux reports the node's CPU pressure stall
// information (PSI, kernel 4.20 and later).
const DefaultPressureFile = "/proc/pressure/cpu"

// parsePressure returns the "some" total of a PSI file: the microseconds
// in which at least one runnable task waited for a CPU, since boot. The
// format is one line per kind:
//
//	some avg10=4.37 avg60=4.22 avg300=13.76 total=5374564682
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func parsePressure(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		fields := bytes.Fields(line)
		if len(fields) == 0 || string(fields[0]) != "some" {
			continue
		}
		for _, f := range fields[1:] {
			v, ok := bytes.CutPrefix(f, []byte("total="))
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("pressure total %q: %w", v, err)
			}
			return n, nil
		}
		return 0, errors.New("pressure: no total on the some line")
	}
	return 0, errors.New("pressure: no some line")
}

// stallMeter turns successive readings of a PSI file into the share of
// wall time in which some task waited for a CPU.
type stallMeter struct {
	file  string
	buf   []byte
	total uint64
	at    time.Time
}

// read returns the stall share since the previous call (0 to 1), and false
// on the first call or after a counter reset. A file that cannot be read or
// parsed is an error.
func (m *stallMeter) read() (float64, bool, error) {
	f, err := os.Open(m.file)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	m.buf = m.buf[:cap(m.buf)]
	if len(m.buf) == 0 {
		m.buf = make([]byte, 512)
	}
	n, err := f.Read(m.buf) // PSI files are a few lines, read whole at once
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", m.file, err)
	}
	total, err := parsePressure(m.buf[:n])
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", m.file, err)
	}
	now := time.Now()
	prevTotal, prevAt := m.total, m.at
	m.total, m.at = total, now
	wall := now.Sub(prevAt)
	if prevAt.IsZero() || total < prevTotal || wall <= 0 {
		return 0, false, nil
	}
	share := float64(total-prevTotal) / (float64(wall) / float64(time.Microsecond))
	return min(share, 1), true, nil
}
