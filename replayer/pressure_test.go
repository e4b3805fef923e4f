package replayer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParsePressure(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "some avg10=4.37 avg60=4.22 avg300=13.76 total=5374564682\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", want: 5374564682},
		{in: "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=12", want: 12},
		{in: "", err: "no some line"},
		{in: "full avg10=0.00 total=3\n", err: "no some line"},
		{in: "some avg10=0.00 avg60=0.00\n", err: "no total"},
		{in: "some total=-1\n", err: "pressure total"},
		{in: "some total=18446744073709551616\n", err: "pressure total"},
	} {
		got, err := parsePressure([]byte(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parsePressure(%q) error %v, want one with %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parsePressure(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// The real file, where the kernel has one: it parses and its counter does
// not run backwards.
func TestStallMeterReadsThisNode(t *testing.T) {
	if _, err := os.Stat(DefaultPressureFile); err != nil {
		t.Skipf("no %s here: %v", DefaultPressureFile, err)
	}
	m := &stallMeter{file: DefaultPressureFile}
	if _, ok, err := m.read(); err != nil || ok {
		t.Fatalf("first read: ok %v err %v; want no share and no error", ok, err)
	}
	for range 3 {
		share, ok, err := m.read()
		if err != nil || !ok || share < 0 || share > 1 {
			t.Fatalf("read: share %v ok %v err %v", share, ok, err)
		}
	}
}

func TestStallMeterErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "cpu")
	if err := os.WriteFile(bad, []byte("some avg10=1.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(dir, "missing"), bad} {
		m := &stallMeter{file: file}
		if _, _, err := m.read(); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("read %s: error %v, want one naming the file", file, err)
		}
	}
}

func FuzzParsePressure(f *testing.F) {
	f.Add([]byte("some avg10=4.37 avg60=4.22 avg300=13.76 total=5374564682\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	f.Add([]byte("some total=1"))
	f.Add([]byte("some\n"))
	f.Add([]byte("\x00some total=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parsePressure(b)
		if err != nil {
			return
		}
		if !strings.Contains(string(b), "total=") || !strings.Contains(string(b), strconv.FormatUint(n, 10)) {
			t.Fatalf("parsed total %d is not in the input %q", n, b)
		}
	})
}
