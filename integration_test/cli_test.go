package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})

	out, code := e.cli("run")
	if code != 2 || !strings.Contains(out, "run cdc-cleaner setup") {
		t.Errorf("run before setup: exit %d, want 2 with advice to run setup:\n%s", code, out)
	}
	out, code = e.cli("check")
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Errorf("check before setup: exit %d, want 1:\n%s", code, out)
	}
	out, code = e.cli("setup", "--print")
	if code != 0 || !strings.Contains(out, "CREATE PUBLICATION") || !strings.Contains(out, "pg_create_logical_replication_slot") {
		t.Errorf("setup --print: exit %d:\n%s", code, out)
	}
	for i := 0; i < 2; i++ { // idempotent
		if out, code = e.cli("setup"); code != 0 {
			t.Fatalf("setup #%d: exit %d:\n%s", i+1, code, out)
		}
	}
	var ident string
	var tables int
	c := e.conn()
	if err := c.QueryRow(context.Background(), `SELECT relreplident::text FROM pg_class WHERE oid = 'gallery_photo'::regclass`).Scan(&ident); err != nil || ident != "f" {
		t.Errorf("replica identity %q, %v; want f", ident, err)
	}
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication_tables WHERE pubname = $1`, e.pub).Scan(&tables); err != nil || tables != 1 {
		t.Errorf("publication has %d tables, %v; want 1", tables, err)
	}
	if out, code = e.cli("check"); code != 0 || !strings.Contains(out, "0 problems") {
		t.Errorf("check after setup: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, testPassword) {
		t.Errorf("check printed a password")
	}
	if out, code = e.cli("version"); code != 0 || !strings.HasPrefix(out, "cdc-cleaner ") {
		t.Errorf("version: exit %d: %s", code, out)
	}
	for _, cmd := range []string{"run", "setup", "check", "teardown", "version"} {
		if out, code = e.cli(cmd, "--help"); code != 0 || !strings.Contains(out, "Usage: cdc-cleaner "+cmd) {
			t.Errorf("%s --help: exit %d:\n%s", cmd, code, out)
		}
	}
	if out, code = e.cli("teardown"); code != 0 || !strings.Contains(out, "dropped replication slot") || !strings.Contains(out, "dropped publication") {
		t.Errorf("teardown: exit %d:\n%s", code, out)
	}
	if out, code = e.cli("teardown"); code != 0 || !strings.Contains(out, "did not exist") {
		t.Errorf("second teardown: exit %d:\n%s", code, out)
	}
	var slots int
	c.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&slots)
	if slots != 0 {
		t.Errorf("slot still exists after teardown")
	}
}

func TestBadConfigurationExitsTwo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})
	cases := map[string]struct {
		yaml string
		want string
	}{
		"unknown key":       {strings.Replace(readFile(t, e.cfgPath), "status_interval:", "status_intervall:", 1), "status_intervall"},
		"missing table":     {strings.Replace(readFile(t, e.cfgPath), "public.gallery_photo", "public.gallery_photoo", 1), "watch[0].table: table public.gallery_photoo does not exist"},
		"missing column":    {strings.Replace(readFile(t, e.cfgPath), "[image, thumbnail]", "[imge, thumbnail]", 1), `watch[0].columns[0]: column "imge" not found in public.gallery_photo`},
		"undefined storage": {strings.Replace(readFile(t, e.cfgPath), "    storage: media", "    storage: medai", 1), "watch[0].storage"},
	}
	for name, c := range cases {
		path := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"run", "setup"} {
			e2 := *e
			e2.cfgPath = path
			out, code := e2.cli(cmd)
			if code != 2 || !strings.Contains(out, c.want) {
				t.Errorf("%s: %s exited %d, want 2 with %q:\n%s", name, cmd, code, c.want, out)
			}
			if strings.Contains(out, testPassword) {
				t.Errorf("%s: output shows a password", name)
			}
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGeneratedColumnIsRefused: pgoutput does not send generated columns,
// so watching one is refused by check (exit 1) and run (exit 2), saying why.
func TestGeneratedColumnIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE upload (id int PRIMARY KEY, name text, path text GENERATED ALWAYS AS ('uploads/' || name) STORED);`,
		watch: `watch:
  - table: upload
    columns: [path]
    storage: media`,
		noSetup: true,
	})
	for cmd, want := range map[string]int{"check": 1, "run": 2, "setup": 2} {
		out, code := e.cli(cmd)
		if code != want || !strings.Contains(out, "generated column") || !strings.Contains(out, "watch[0].columns[0]") {
			t.Errorf("%s: exit %d (want %d):\n%s", cmd, code, want, out)
		}
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
