package integration_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

// scanSchema references files through a text column, a text[] column, a
// jsonb path and a protect column.
const scanSchema = photoSchema + `
CREATE TABLE album (id int PRIMARY KEY, pictures text[]);
CREATE TABLE document (id int PRIMARY KEY, attachments jsonb);
CREATE TABLE legacy_upload (id int PRIMARY KEY, file text);`

const scanWatch = photoWatch + `
  - table: album
    columns: [pictures]
    storage: media
  - table: document
    columns: [attachments]
    json_path: "files[*].path"
    storage: media
protect:
  - table: legacy_upload
    columns: [file]
    storage: media`

const scanRows = `INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'photos/a.jpg', 'thumbs/a.jpg');
INSERT INTO album VALUES (1, ARRAY['albums/1.jpg', 'albums/2.jpg']);
INSERT INTO document VALUES (1, '{"files":[{"path":"docs/x.pdf"}]}');
INSERT INTO legacy_upload VALUES (1, 'legacy/old.bin');`

var (
	scanReferenced = []string{"photos/a.jpg", "thumbs/a.jpg", "albums/1.jpg", "albums/2.jpg", "docs/x.pdf", "legacy/old.bin"}
	scanOrphans    = []string{"photos/orphan.jpg", "albums/3.jpg", "docs/y.pdf", "deep/er/orphan with space.txt"}
	scanExcluded   = []string{"cache/c1.bin", "cache/sub/c2.bin"}
	scanKept       = []string{"defaults/avatar.png"}
	scanTrashed    = []string{".trash/photos/gone.jpg"}
)

// makeOld sets the modification time of files under root to two days ago.
func makeOld(t *testing.T, root string, paths ...string) {
	t.Helper()
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range paths {
		if err := os.Chtimes(filepath.Join(root, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func newScanEnv(t *testing.T, media string) *env {
	t.Helper()
	e := newEnv(t, envOptions{schema: scanSchema, watch: scanWatch, noSetup: true,
		media: `    keep: ["defaults/*"]` + "\n" + media})
	e.exec(scanRows)
	all := slices.Concat(scanReferenced, scanOrphans, scanExcluded, scanKept, scanTrashed)
	e.put(all...)
	makeOld(t, e.root, all...)
	e.put("photos/young.jpg") // an upload whose row is not committed yet
	if err := os.Symlink(filepath.Join(e.outside), filepath.Join(e.root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	e.putOutside("secret.txt")
	if err := os.Symlink(filepath.Join(e.root, "photos/orphan.jpg"), filepath.Join(e.root, "link.jpg")); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) putOutside(name string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.outside, name), []byte("secret"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// scanLines returns the output's lines that are not logs or the summary.
func orphanLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, "\t") {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

func firstFields(lines []string) []string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.Split(l, "\t")[0])
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestScanLocal(t *testing.T) {
	t.Parallel()
	e := newScanEnv(t, "")
	everything := slices.Concat(scanReferenced, scanOrphans, scanExcluded, scanKept, scanTrashed, []string{"photos/young.jpg", "link.jpg"})

	// Dry run, text.
	out, code := e.cli("scan", "--exclude", "cache/**")
	if code != 0 {
		t.Fatalf("scan exited %d:\n%s", code, out)
	}
	lines := orphanLines(out)
	if got := firstFields(lines); !slices.Equal(got, sorted(scanOrphans)) {
		t.Errorf("dry run listed %q, want %q\n%s", got, sorted(scanOrphans), out)
	}
	for _, l := range lines {
		if f := strings.Split(l, "\t"); len(f) != 3 {
			t.Errorf("line %q: want path, size, mtime", l)
		} else if _, err := time.Parse(time.RFC3339, f[2]); err != nil {
			t.Errorf("line %q: mtime: %v", l, err)
		}
	}
	wantContains(t, "dry-run summary", out, "14 files scanned", "6 referenced", "4 orphaned", "1 young", "2 excluded", "1 kept", "dry run: nothing deleted")
	e.expect(everything, nil)

	// Dry run, JSON, to a file.
	outFile := filepath.Join(e.dir, "orphans.jsonl")
	out, code = e.cli("scan", "--storage", "media", "--json", "--output", outFile, "--exclude", "cache/**")
	if code != 0 {
		t.Fatalf("scan --json exited %d:\n%s", code, out)
	}
	var paths []string
	var summary map[string]any
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, outFile)), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		switch v["type"] {
		case "orphan":
			paths = append(paths, v["path"].(string))
			if v["size"].(float64) <= 0 || v["mtime"] == nil {
				t.Errorf("orphan %v lacks size or mtime", v)
			}
		case "summary":
			summary = v
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	slices.Sort(paths)
	if !slices.Equal(paths, sorted(scanOrphans)) {
		t.Errorf("JSON orphans %q, want %q", paths, sorted(scanOrphans))
	}
	for k, want := range map[string]float64{"files_scanned": 14, "referenced": 6, "orphaned": 4, "young": 1, "excluded": 2, "kept": 1, "deleted": 0} {
		if summary[k] != want {
			t.Errorf("summary %s = %v, want %v (%v)", k, summary[k], want, summary)
		}
	}
	if summary["complete"] != true {
		t.Errorf("summary not complete: %v", summary)
	}
	e.expect(everything, nil)

	// --delete deletes exactly the orphans.
	out, code = e.cli("scan", "--delete", "--exclude", "cache/**")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	for _, l := range orphanLines(out) {
		if !strings.HasSuffix(l, "\tdeleted") {
			t.Errorf("line %q: want outcome deleted", l)
		}
	}
	wantContains(t, "delete summary", out, "deleted 4, absent 0, failed 0")
	rest := slices.DeleteFunc(slices.Clone(everything), func(p string) bool { return slices.Contains(scanOrphans, p) })
	e.expect(rest, scanOrphans)
	if _, err := os.Stat(filepath.Join(e.outside, "secret.txt")); err != nil {
		t.Errorf("a file outside the root: %v", err)
	}

	// A second scan finds nothing; without --exclude the cache is orphaned.
	out, code = e.cli("scan", "--exclude", "cache/**")
	if code != 0 || len(orphanLines(out)) != 0 {
		t.Errorf("second scan exited %d with orphans:\n%s", code, out)
	}
	out, _ = e.cli("scan")
	if got := firstFields(orphanLines(out)); !slices.Equal(got, sorted(scanExcluded)) {
		t.Errorf("scan without --exclude listed %q, want %q", got, sorted(scanExcluded))
	}
	// --min-age 0s makes the young file a candidate.
	out, _ = e.cli("scan", "--min-age", "0s", "--exclude", "cache/**")
	if got := firstFields(orphanLines(out)); !slices.Equal(got, []string{"photos/young.jpg"}) {
		t.Errorf("scan --min-age 0s listed %q, want the young file", got)
	}
}

func TestScanTrash(t *testing.T) {
	t.Parallel()
	e := newScanEnv(t, "    trash: true\n    trash_prefix: .trash/")
	out, code := e.cli("scan", "--delete", "--exclude", "cache/**")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	var trashed []string
	for _, p := range scanOrphans {
		trashed = append(trashed, ".trash/"+p)
	}
	e.expect(slices.Concat(trashed, scanReferenced, scanTrashed), scanOrphans)
}

func TestScanBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true,
		storages: "storages:\n  media:\n    type: local\n    root: ROOT\n  unused:\n    type: local\n    root: OUTSIDE"})
	cfg := strings.ReplaceAll(readFile(t, e.cfgPath), "ROOT", e.root)
	cfg = strings.ReplaceAll(cfg, "OUTSIDE", e.outside)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.put("orphan.jpg")
	makeOld(t, e.root, "orphan.jpg")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown storage", []string{"--storage", "nope"}, `no such storage`},
		{"no storage among several", nil, "choose one with --storage"},
		{"storage without columns", []string{"--storage", "unused"}, "every file would look orphaned"},
		{"negative min-age", []string{"--storage", "media", "--min-age", "-1h"}, "must not be negative"},
		{"bad exclude", []string{"--storage", "media", "--exclude", "a/["}, "not a valid pattern"},
		{"argument", []string{"--storage", "media", "extra"}, "unexpected argument"},
	} {
		out, code := e.cli(append([]string{"scan", "--delete"}, c.args...)...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", c.name, code, c.want, out)
		}
	}
	// A watched column that does not exist.
	e.exec(`ALTER TABLE gallery_photo RENAME COLUMN thumbnail TO thumb`)
	out, code := e.cli("scan", "--storage", "media", "--delete")
	if code != 2 || !strings.Contains(out, "public.gallery_photo.thumbnail") {
		t.Errorf("missing column: exit %d:\n%s", code, out)
	}
	e.exec(`ALTER TABLE gallery_photo RENAME COLUMN thumb TO thumbnail`)
	// A root that cannot be read.
	if os.Geteuid() != 0 {
		if err := os.Chmod(e.root, 0); err != nil {
			t.Fatal(err)
		}
		out, code = e.cli("scan", "--storage", "media", "--delete")
		os.Chmod(e.root, 0o755)
		if code == 0 || !strings.Contains(out, "permission denied") {
			t.Errorf("unreadable root: exit %d:\n%s", code, out)
		}
	}
	// The database cannot be reached.
	e.env = []string{"CDC_CLEANER_POSTGRES_URL=postgres://postgres@127.0.0.1:1/nope?connect_timeout=2"}
	out, code = e.cli("scan", "--storage", "media", "--delete")
	e.env = nil
	if code != 1 {
		t.Errorf("database down: exit %d, want 1:\n%s", code, out)
	}
	e.expect([]string{"orphan.jpg"}, nil)
}

// TestScanS3: referenced, orphaned, kept, excluded, trashed and outside
// objects; dry run, then --delete. Objects on the in-process server are
// new, so --min-age 0s (the young case is tested on local storage).
func TestScanS3(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: scanSchema, watch: scanWatch, noSetup: true,
		media: `    keep: ["defaults/*"]`}, s3test.Options{})
	e.exec(scanRows)
	all := slices.Concat(scanReferenced, scanOrphans, scanExcluded, scanKept, scanTrashed, []string{"a//b.jpg"})
	for _, p := range all {
		srv.Put(t, prefix+p, []byte("content of "+p))
	}
	srv.Put(t, prefix+"folder/", nil)
	outside := srv.Prefix() + "mediaoutside.jpg"
	srv.Put(t, outside, []byte("not ours"))

	out, code := e.cli("scan", "--min-age", "0s", "--exclude", "cache/**", "--json")
	if code != 0 {
		t.Fatalf("scan exited %d:\n%s", code, out)
	}
	var orphans []string
	for _, l := range strings.Split(out, "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(l), &v) == nil && v["type"] == "orphan" {
			orphans = append(orphans, v["path"].(string))
		}
	}
	slices.Sort(orphans)
	if !slices.Equal(orphans, sorted(scanOrphans)) {
		t.Errorf("orphans %q, want %q\n%s", orphans, sorted(scanOrphans), out)
	}
	wantContains(t, "summary", out, `"invalid":1`, `"kept":1`, `"excluded":2`, "not a valid path")

	out, code = e.cli("scan", "--min-age", "0s", "--exclude", "cache/**", "--delete")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	for _, p := range all {
		want := !slices.Contains(scanOrphans, p)
		if srv.Exists(t, prefix+p) != want {
			t.Errorf("%s: exists = %v, want %v", p, !want, want)
		}
	}
	if !srv.Exists(t, outside) {
		t.Errorf("%s outside the prefix was deleted", outside)
	}
}

// TestScanS3WithoutListPermission: an AccessDenied listing is a clear
// error, exit 1, and nothing is deleted.
func TestScanS3WithoutListPermission(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true}, s3test.Options{
		RequestError: func(op string) (int, string) {
			if op == s3test.OpListObjects {
				return http.StatusForbidden, "AccessDenied"
			}
			return 0, ""
		},
	})
	srv.RequireFake(t)
	srv.Put(t, prefix+"orphan.jpg", []byte("x"))
	out, code := e.cli("scan", "--min-age", "0s", "--delete")
	if code != 1 || !strings.Contains(out, "AccessDenied") || !strings.Contains(out, "list s3://") {
		t.Errorf("exit %d, want 1 and AccessDenied:\n%s", code, out)
	}
	if !srv.Exists(t, prefix+"orphan.jpg") {
		t.Error("orphan.jpg was deleted after a failed listing")
	}
}

// TestScanReferenceAddedAfterListing: a row that references an orphan,
// committed after the listing and before the deletion, keeps the file. The
// real reference check and local storage, with the scanner's hook between
// its phases.
func TestScanReferenceAddedAfterListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})
	e.put("a.jpg", "b.jpg", "c.jpg")
	makeOld(t, e.root, "a.jpg", "b.jpg", "c.jpg")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	refs, err := refcheck.New(pool, []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "gallery_photo", Name: "image", Type: typeText},
		{Storage: "media", Schema: "public", Table: "gallery_photo", Name: "thumbnail", Type: typeText},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := local.New(e.root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	outcomes := map[string]string{}
	stats, err := scan.Run(ctx, scan.Config{
		Storage: "media", Files: st, Store: st, Refs: refs, MinAge: time.Hour, Delete: true,
		Force: true, // every listed file is an orphan: this test is about the re-check
		AfterList: func(context.Context) error {
			e.exec(`INSERT INTO gallery_photo (image, thumbnail) VALUES ('b.jpg', '')`)
			return nil
		},
		Report: func(o scan.Orphan) error { outcomes[o.Path] = o.Outcome; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.jpg": "deleted", "b.jpg": "referenced", "c.jpg": "deleted"}
	for p, o := range want {
		if outcomes[p] != o {
			t.Errorf("%s: %q, want %q", p, outcomes[p], o)
		}
	}
	if stats.Orphaned != 3 || stats.Deleted != 2 || stats.Rescued != 1 {
		t.Errorf("stats %+v", stats)
	}
	e.expect([]string{"b.jpg"}, []string{"a.jpg", "c.jpg"})
}
