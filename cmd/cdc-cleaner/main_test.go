package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// isolateEnv removes, for the duration of the test, every environment
// variable that could change how a configuration loads or where a
// connection goes: CDC_CLEANER_*, DATABASE_URL and libpq's PG*. t.Setenv
// restores them afterwards (and forbids t.Parallel, which these tests
// cannot use anyway).
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CDC_CLEANER_") || k == "DATABASE_URL" || strings.HasPrefix(k, "PG") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func runMain(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// writeConfig writes a configuration file in a temporary directory, with
// a local storage rooted there, and returns its path. url replaces the
// postgres.url line; "" leaves the key out.
func writeConfig(t *testing.T, url, extra string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "media")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("postgres:\n")
	if url != "" {
		b.WriteString("  url: '" + url + "'\n")
	}
	b.WriteString(`  slot: cdc_cleaner
storages:
  media:
    type: local
    root: ` + root + `
watch:
  - table: '"Media Schema"."PhotoTable"'
    columns: ['"ImageFile"', thumbnail]
    storage: media
http:
  listen: ""
`)
	b.WriteString(extra)
	path := filepath.Join(dir, "cdc-cleaner.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPortURL points at a port nothing listens on.
const (
	password      = "s3cr3t-Pa55word"
	closedPortURL = "postgres://cleaner:" + password + "@127.0.0.1:1/app?connect_timeout=5"
)

func TestMainUsage(t *testing.T) {
	isolateEnv(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring; "" means stdout must be empty
		wantStderr string // substring; "" means anything
	}{
		{"no arguments", nil, 2, "", "Usage: cdc-cleaner <command>"},
		{"help", []string{"help"}, 0, "Usage: cdc-cleaner <command>", ""},
		{"--help", []string{"--help"}, 0, "Usage: cdc-cleaner <command>", ""},
		{"-h", []string{"-h"}, 0, "Usage: cdc-cleaner <command>", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"flag before command", []string{"--config", "x.yaml", "run"}, 2, "", `unknown command "--config"`},
		{"version", []string{"version"}, 0, "cdc-cleaner ", ""},
		{"--version", []string{"--version"}, 0, "cdc-cleaner ", ""},
		{"version with an unexpected argument", []string{"version", "extra"}, 2, "", `unexpected argument "extra"`},
		{"run with an unexpected argument", []string{"run", "--config", "x.yaml", "extra"}, 2, "", `unexpected argument "extra"`},
		{"check with an unexpected argument", []string{"check", "extra"}, 2, "", `unexpected argument "extra"`},
		{"unknown flag", []string{"run", "--no-such-flag"}, 2, "", "no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runMain(t, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.wantCode, r)
			}
			if tt.wantStdout == "" && r.stdout != "" {
				t.Errorf("unexpected stdout:\n%s", r.stdout)
			}
			if !strings.Contains(r.stdout, tt.wantStdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.wantStdout, r)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, r)
			}
		})
	}
}

func TestMainCommandHelp(t *testing.T) {
	isolateEnv(t)
	for _, c := range commands() {
		for _, flag := range []string{"--help", "-h"} {
			t.Run(c.name+" "+flag, func(t *testing.T) {
				// A missing configuration file must not matter for --help.
				r := runMain(t, c.name, "--config", "/nonexistent/cdc-cleaner.yaml", flag)
				if r.code != 0 {
					t.Errorf("exit %d, want 0\n%s", r.code, r)
				}
				if want := "Usage: cdc-cleaner " + c.name; !strings.Contains(r.stdout, want) {
					t.Errorf("stdout does not contain %q\n%s", want, r)
				}
				if c.name != "version" && !strings.Contains(r.stdout, "-config") {
					t.Errorf("help does not list --config\n%s", r)
				}
			})
		}
	}
}

func TestMainConfigErrors(t *testing.T) {
	isolateEnv(t)
	missing := filepath.Join(t.TempDir(), "nonexistent.yaml")
	unknownKey := writeConfig(t, closedPortURL, "frobnicate: true\n")
	unknownNested := writeConfig(t, closedPortURL, "log:\n  levle: debug\n")
	invalid := writeConfig(t, closedPortURL, "log:\n  level: loud\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stderr
	}{
		{"run, missing file", []string{"run", "--config", missing}, 2, missing},
		{"check, missing file", []string{"check", "--config", missing}, 2, missing},
		{"setup, missing file", []string{"setup", "--config", missing}, 2, missing},
		{"teardown, missing file", []string{"teardown", "--config", missing}, 1, missing},
		{"discover, missing file", []string{"discover", "--config", missing}, 2, missing},
		{"discover, invalid value", []string{"discover", "--config", invalid}, 2, "log.level"},
		{"run, unknown top-level key", []string{"run", "--config", unknownKey}, 2, "frobnicate"},
		{"check, unknown nested key", []string{"check", "--config", unknownNested}, 2, "levle"},
		{"setup --print, unknown key", []string{"setup", "--print", "--config", unknownKey}, 2, "frobnicate"},
		{"run, invalid value", []string{"run", "--config", invalid}, 2, "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runMain(t, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.wantCode, r)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not mention %q\n%s", tt.want, r)
			}
			if strings.Contains(r.stdout+r.stderr, password) {
				t.Errorf("output contains the password\n%s", r)
			}
		})
	}
}

func TestMainUnreachableDatabase(t *testing.T) {
	isolateEnv(t)
	const kvPassword = "kv-s3cr3t-Pa55"
	urlForm := writeConfig(t, closedPortURL, "")
	kvForm := writeConfig(t, "host=127.0.0.1 port=1 user=cleaner password="+kvPassword+" dbname=app connect_timeout=5", "")
	fromEnv := writeConfig(t, "", "")
	tests := []struct {
		name     string
		config   string
		env      map[string]string
		args     []string
		wantCode int
	}{
		{"check, URL", urlForm, nil, []string{"check"}, 1},
		{"run, URL", urlForm, nil, []string{"run"}, 2},
		{"run --dry-run, URL", urlForm, nil, []string{"run", "--dry-run"}, 2},
		{"setup, URL", urlForm, nil, []string{"setup"}, 2},
		{"teardown, URL", urlForm, nil, []string{"teardown"}, 1},
		{"discover, URL", urlForm, nil, []string{"discover"}, 1},
		{"discover, key=value", kvForm, nil, []string{"discover"}, 1},
		{"check, key=value", kvForm, nil, []string{"check"}, 1},
		{"run, key=value", kvForm, nil, []string{"run"}, 2},
		{"check, CDC_CLEANER_POSTGRES_URL", fromEnv, map[string]string{"CDC_CLEANER_POSTGRES_URL": closedPortURL}, []string{"check"}, 1},
		{"run, DATABASE_URL", fromEnv, map[string]string{"DATABASE_URL": closedPortURL}, []string{"run"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := runMain(t, append(tt.args, "--config", tt.config)...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.wantCode, r)
			}
			for _, secret := range []string{password, kvPassword} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("output contains the password %q\n%s", secret, r)
				}
			}
			if !strings.Contains(r.stdout+r.stderr, "127.0.0.1") {
				t.Errorf("output does not say which database could not be reached\n%s", r)
			}
		})
	}
}

func TestMainSetupPrint(t *testing.T) {
	isolateEnv(t)
	cfg := writeConfig(t, closedPortURL, "")
	r := runMain(t, "setup", "--print", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0 without a database\n%s", r.code, r)
	}
	for _, want := range []string{
		`CREATE PUBLICATION "cdc_cleaner" FOR TABLE ONLY "Media Schema"."PhotoTable"`,
		"publish = 'insert, update, delete, truncate'",
		`pg_partition_tree('"Media Schema"."PhotoTable"'::regclass)`,
		"REPLICA IDENTITY FULL",
		"pg_create_logical_replication_slot('cdc_cleaner', 'pgoutput')",
		"CREATE SCHEMA IF NOT EXISTS cdc_cleaner",
		"cdc_cleaner.failed_deletions",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("SQL does not contain %q\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Errorf("output contains the password\n%s", r)
	}
	if r.stderr != "" {
		t.Errorf("unexpected stderr:\n%s", r.stderr)
	}
}

// TestS3OverlapOnResolvedEndpoints: a storage without endpoint goes where
// AWS_ENDPOINT_URL_S3 says, which the configuration check cannot see; when
// that is another storage's server (spelled differently), the same bucket
// and prefix are refused when the storages are opened.
func TestS3OverlapOnResolvedEndpoints(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", "")
	os.Unsetenv("AWS_ENDPOINT_URL")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000/")
	cfg := &config.Config{Storages: map[string]*config.Storage{
		"media":   {Type: config.StorageS3, Bucket: "app", Prefix: "media/"},
		"uploads": {Type: config.StorageS3, Bucket: "app", Prefix: "media/avatars/", Endpoint: "http://localhost:9000", PathStyle: true},
	}}
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("the configuration check already sees an overlap: %v", err)
	}
	_, closeAll, err := openStorages(context.Background(), cfg, zerolog.Nop())
	if err == nil {
		closeAll()
		t.Fatal("opened two storages on one bucket and prefix")
	}
	if !strings.Contains(err.Error(), "storages.uploads.prefix") || !strings.Contains(err.Error(), `overlaps storage "media"`) {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)

	// Another server: both open.
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001")
	_, closeAll, err = openStorages(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("storages on two servers: %v", err)
	}
	closeAll()
}
