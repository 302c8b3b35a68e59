package pgtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinariesIn checks that CDC_TEST_PG_BIN is taken as it is: a directory
// that lacks a server binary is an error naming the variable and what is
// missing, never a reason to look elsewhere.
func TestBinariesIn(t *testing.T) {
	full := t.TempDir()
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		writeExecutable(t, filepath.Join(full, name))
	}
	onlyServer := t.TempDir()
	writeExecutable(t, filepath.Join(onlyServer, "postgres"))
	if err := os.WriteFile(filepath.Join(onlyServer, "initdb"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		dir     string
		wantErr []string // substrings of the error; none: no error
	}{
		{name: "all three", dir: full},
		{name: "empty", dir: t.TempDir(), wantErr: []string{EnvPGBin + "=", "lacks initdb, pg_ctl, postgres", "scripts/pg-fetch"}},
		{name: "not executable or missing", dir: onlyServer, wantErr: []string{"lacks initdb, pg_ctl:"}},
		{name: "no such directory", dir: filepath.Join(full, "nope"), wantErr: []string{"lacks initdb, pg_ctl, postgres"}},
		{name: "relative", dir: "pg/bin", wantErr: []string{EnvPGBin + "=pg/bin must be an absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := binariesIn(tc.dir)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("binariesIn(%s): %v", tc.dir, err)
				}
				if want := filepath.Join(tc.dir, "pg_ctl"); b.pgCtl != want {
					t.Errorf("pg_ctl = %s, want %s", b.pgCtl, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("binariesIn(%s) = %+v, want an error", tc.dir, b)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			// A run that asked for one server must fail, not skip.
			if IsNotInstalled(err) {
				t.Errorf("IsNotInstalled(%v) = true, want false", err)
			}
		})
	}
}

// TestFindBinariesTakesEnv checks that CDC_TEST_PG_BIN wins over PATH.
func TestFindBinariesTakesEnv(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		writeExecutable(t, filepath.Join(dir, name))
	}
	t.Setenv(EnvPGBin, dir)
	b, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "postgres"); b.postgres != want {
		t.Errorf("postgres = %s, want %s", b.postgres, want)
	}

	t.Setenv(EnvPGBin, t.TempDir())
	if b, err := findBinaries(); err == nil {
		t.Errorf("findBinaries with an empty %s = %+v, want an error", EnvPGBin, b)
	}
}

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}
