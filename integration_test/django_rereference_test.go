package integration_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// django is the project under testdata/django, copied for one test and
// pointed at its env's database, with MEDIA_ROOT the env's storage root.
type django struct {
	t   *testing.T
	dir string
	env []string
}

func newDjango(t *testing.T, e *env) *django {
	t.Helper()
	requireDjango(t)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/django")); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return &django{t: t, dir: dir, env: append(cleanEnv(), "PYTHONDONTWRITEBYTECODE=1",
		"PGHOST="+u.Hostname(), "PGPORT="+u.Port(), "PGDATABASE="+strings.TrimPrefix(u.Path, "/"),
		"PGUSER="+u.User.Username(), "PGPASSWORD="+pw, "MEDIA_ROOT="+e.root)}
}

// manage runs manage.py with args and returns its stdout; it fails the
// test, with the command's stderr, when manage.py exits non-zero.
func (d *django) manage(args ...string) []byte {
	d.t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"manage.py"}, args...)...)
	cmd.Dir = d.dir
	cmd.Env = d.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("manage.py %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// TestDjangoRereference drives promise 7 through a real Django
// application: its ORM, a FileField and the default FileSystemStorage on
// the cleaner's storage root, with the cleaner's default configuration
// (trash not mentioned). The application's script
// (testdata/django/gallery/management/commands/rereference.py) waits
// until the cleaner has removed a file before it references it again, so
// each race goes the way that needs a restore.
func TestDjangoRereference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noSetup: true, watch: `watch:
  - table: public.gallery_photo
    columns: [image]
    storage: media`})
	d := newDjango(t, e)
	d.manage("migrate", "--no-input")
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup: exit %d:\n%s", code, out)
	}
	e.start()

	// A stale instance: B replaces the file, the cleaner removes the old
	// one, and A's save() writes the old path back with a new title.
	var stale struct {
		Old        string `json:"old"`
		OldContent string `json:"old_content"`
		New        string `json:"new"`
		NewContent string `json:"new_content"`
	}
	if err := json.Unmarshal(d.manage("rereference", "stale-save"), &stale); err != nil {
		t.Fatalf("the output of manage.py rereference stale-save: %v", err)
	}
	e.settle()
	if got := pgQueryString(t, e, `SELECT image FROM gallery_photo WHERE title = 'me, renamed'`); got != stale.Old {
		t.Fatalf("the row references %q after the stale save, want %q", got, stale.Old)
	}
	if got := e.content(stale.Old); got != stale.OldContent {
		t.Errorf("%s, which the row references again, holds %q, want %q; journal %q", stale.Old, got, stale.OldContent, e.journal(stale.Old))
	}
	if got := e.journal(stale.Old); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Errorf("journal of %s = %q, want [trashed restored]", stale.Old, got)
	}
	e.expect([]string{".trash/" + stale.New}, []string{stale.New, ".trash/" + stale.Old})
	if got := e.content(".trash/" + stale.New); got != stale.NewContent {
		t.Errorf(".trash/%s holds %q, want %q", stale.New, got, stale.NewContent)
	}
	if got := e.journal(stale.New); !slices.Equal(got, []string{"trashed"}) {
		t.Errorf("journal of %s, orphaned by the stale save = %q, want [trashed]", stale.New, got)
	}
	out, code := e.cli("history", "--json", stale.Old)
	var entries []struct{ Event, Source string }
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 2 ||
		entries[0].Event != "restored" || entries[1].Event != "trashed" || entries[0].Source != "public.gallery_photo.image" {
		t.Errorf("history --json %s: exit %d, want 0 and trashed then restored (newest first) by public.gallery_photo.image:\n%s", stale.Old, code, out)
	}

	// A re-sync: rows deleted, their files removed, then the same rows
	// (ids and file names) created again in one transaction, but one.
	var resync struct {
		Contents  map[string]string `json:"contents"`
		Recreated []string          `json:"recreated"`
		Dropped   []string          `json:"dropped"`
	}
	if err := json.Unmarshal(d.manage("rereference", "resync"), &resync); err != nil {
		t.Fatalf("the output of manage.py rereference resync: %v", err)
	}
	e.settle()
	for _, p := range resync.Recreated {
		if got := e.content(p); got != resync.Contents[p] {
			t.Errorf("%s, whose row was re-created, holds %q, want %q; journal %q", p, got, resync.Contents[p], e.journal(p))
		}
		if e.exists(".trash/" + p) {
			t.Errorf("%s was restored and is still in the trash", p)
		}
		if got := e.journal(p); !slices.Equal(got, []string{"trashed", "restored"}) {
			t.Errorf("journal of %s = %q, want [trashed restored]", p, got)
		}
	}
	for _, p := range resync.Dropped {
		e.expect([]string{".trash/" + p}, []string{p})
		if got := e.journal(p); !slices.Equal(got, []string{"trashed"}) {
			t.Errorf("journal of %s, whose row was not re-created = %q, want [trashed]", p, got)
		}
	}
	if f := e.failed(); len(f) != 0 {
		t.Errorf("failed_deletions: %v, want none", f)
	}
}
