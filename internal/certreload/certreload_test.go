package certreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// common name.
func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

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
	writeCert(t, certFile, keyFile, "good")
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
	writeCert(t, certFile, keyFile, "better")
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
	writeCert(t, certFile, keyFile, "first")
	r, err := New(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = time.Hour
	writeCert(t, certFile, keyFile, "second")
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
