package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// ociArchive is an OCI image layout in a tar file, as `buildah push
// oci-archive:` writes it: its files by name.
type ociArchive map[string][]byte

func readOCIArchive(t *testing.T, file string) ociArchive {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := ociArchive{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return a
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		a[path.Clean(h.Name)] = b
	}
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

func (a ociArchive) blob(t *testing.T, d descriptor) []byte {
	t.Helper()
	alg, hex, ok := strings.Cut(d.Digest, ":")
	if !ok {
		t.Fatalf("digest %q", d.Digest)
	}
	b, ok := a[path.Join("blobs", alg, hex)]
	if !ok {
		t.Fatalf("blob %s not in the archive", d.Digest)
	}
	if int64(len(b)) != d.Size {
		t.Fatalf("blob %s: %d bytes, descriptor says %d", d.Digest, len(b), d.Size)
	}
	return b
}

// imageConfig is the part of an OCI image config the test reads.
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

// unpack reads the image's manifest and config and extracts its layers,
// in order, into root. It returns the config, the names of the regular
// files, and the compressed size of the layers.
func (a ociArchive) unpack(t *testing.T, root string) (imageConfig, []string, int64) {
	t.Helper()
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(a["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests", err, len(index.Manifests))
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(a.blob(t, index.Manifests[0]), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(a.blob(t, manifest.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	var files []string
	var size int64
	for _, l := range manifest.Layers {
		size += l.Size
		var r io.Reader = bytes.NewReader(a.blob(t, l))
		if strings.HasSuffix(l.MediaType, "+gzip") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := path.Clean("/" + h.Name)
			if strings.HasPrefix(path.Base(name), ".wh.") {
				t.Fatalf("layer whiteout %s: a scratch image has nothing to delete", name)
			}
			dst := filepath.Join(root, filepath.FromSlash(name))
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(dst, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, b, os.FileMode(h.Mode)&0o755|0o400); err != nil {
					t.Fatal(err)
				}
				files = append(files, name)
			default:
				t.Errorf("layer entry %s of type %c: want only files and directories", name, h.Typeflag)
			}
		}
	}
	sort.Strings(files)
	return cfg, files, size
}

// TestImageRunsPreheat builds the image with tools/image/build.sh (buildah
// building the Dockerfile; PREHEAT_IMAGE names an OCI archive to test
// instead), unpacks it, checks what it holds and how it runs, and runs
// `preheat version` from its filesystem.
func TestImageRunsPreheat(t *testing.T) {
	archive := os.Getenv("PREHEAT_IMAGE")
	const version = "v0.0.0-deploy-test"
	if archive == "" {
		needTool(t, "buildah", "apt-get install buildah")
		if os.Geteuid() != 0 {
			t.Skip("tools/image/build.sh runs buildah as root")
		}
		archive = filepath.Join(t.TempDir(), "preheat-image.tar")
		cmd := exec.Command("bash", "tools/image/build.sh", archive)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "VERSION="+version)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tools/image/build.sh: %v\n%s", err, out)
		} else {
			t.Logf("%s", out)
		}
	}
	root := t.TempDir()
	cfg, files, size := readOCIArchive(t, archive).unpack(t, root)
	t.Logf("image: %d layer bytes compressed, files %v", size, files)

	if want := []string{"/etc/ssl/certs/ca-certificates.crt", "/preheat"}; fmt.Sprint(files) != fmt.Sprint(want) {
		t.Errorf("image files %v, want exactly %v (no shell, nothing else)", files, want)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("image platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if fmt.Sprint(cfg.Config.Entrypoint) != "[/preheat]" || len(cfg.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/preheat] and none", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(cfg.Config.User) {
		t.Errorf("user %q: want a numeric non-root uid (runAsNonRoot verifies only numbers)", cfg.Config.User)
	}
	for _, k := range []string{"version", "revision", "source", "title"} {
		if cfg.Config.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("no org.opencontainers.image.%s label", k)
		}
	}
	if v := cfg.Config.Labels["org.opencontainers.image.version"]; os.Getenv("PREHEAT_IMAGE") == "" && v != version {
		t.Errorf("version label %q, want %q", v, version)
	}

	bin := filepath.Join(root, "preheat")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("preheat is dynamically linked: scratch has no loader")
		}
	}
	f.Close()
	pem, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil || bytes.Count(pem, []byte("BEGIN CERTIFICATE")) < 50 {
		t.Errorf("the CA bundle holds %d certificates (%v)", bytes.Count(pem, []byte("BEGIN CERTIFICATE")), err)
	}

	cmd := exec.Command(bin, "version")
	cmd.Env = []string{}
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("preheat version: %v\n%s", err, out)
	}
	t.Logf("preheat version: %s", out)
	v := cfg.Config.Labels["org.opencontainers.image.version"]
	if !regexp.MustCompile(`^preheat ` + regexp.QuoteMeta(v) + ` go1\.\d+`).Match(out) {
		t.Errorf("preheat version printed %q, want the image's version %s and the Go version", out, v)
	}
	// The flags of the image's own binary must take the manifests too.
	t.Setenv("PREHEAT_BINARY", bin)
	t.Run("manifests", TestArgsParseWithPreheatsOwnFlags)
}
