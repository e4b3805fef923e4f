package certreload

import (
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/preheatdev/preheat/internal/testcert"
)

// served returns the common name of the certificate r serves now.
func served(t *testing.T, r *Reloader) string {
	t.Helper()
	cert, err := r.GetCertificate(nil)
	if err != nil || cert == nil {
		t.Fatalf("GetCertificate: %v %v", cert, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// TestReloaderKeepsGoodPair checks that a broken new pair is refused and
// the previous one served, and a good new pair served.
func TestReloaderKeepsGoodPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	testcert.Write(t, certFile, keyFile, "good")
	r, err := New(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = 0
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cn := served(t, r); cn != "good" {
		t.Fatalf("served %q", cn)
	}
	if err := r.Reload(); err == nil {
		t.Error("Reload of a broken pair succeeded")
	}
	if cn := served(t, r); cn != "good" {
		t.Fatalf("after a failed Reload, served %q", cn)
	}
	testcert.Write(t, certFile, keyFile, "better")
	if cn := served(t, r); cn != "better" {
		t.Fatalf("after a good new pair, served %q", cn)
	}
}

// TestReloaderChecksFilesAtMostEveryInterval checks that new files are
// not looked at before checkEvery has passed since the last look, and
// that Reload picks them up at once.
func TestReloaderChecksFilesAtMostEveryInterval(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	testcert.Write(t, certFile, keyFile, "first")
	r, err := New(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = time.Hour
	testcert.Write(t, certFile, keyFile, "second")
	if cn := served(t, r); cn != "first" {
		t.Fatalf("files looked at within checkEvery: served %q", cn)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := served(t, r); cn != "second" {
		t.Fatalf("after Reload, served %q", cn)
	}
}

func TestNewFailsWithoutAPair(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "c"), filepath.Join(dir, "k"), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("New without files succeeded")
	}
}
