package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Promise 7: a file referenced again comes back. These tests drive the
// races applications run into, with the defaults (trash on), against the
// real cleaner, database and files.

// content reads a file under the root; "" when it does not exist.
func (e *env) content(p string) string {
	b, err := os.ReadFile(filepath.Join(e.root, p))
	if err != nil {
		return ""
	}
	return string(b)
}

// waitFor polls cond until it holds or timeout passes.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// journal returns the events the journal holds for path, oldest first.
func (e *env) journal(path string) []string {
	e.t.Helper()
	rows, err := e.conn().Query(context.Background(),
		`SELECT event FROM cdc_cleaner.journal WHERE path = $1 ORDER BY commit_lsn, id`, path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ev string
		if err := rows.Scan(&ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestRecreatedRowsGetTheirFilesBack: a job deletes rows and re-creates
// them with the same paths a moment later, outside one transaction.
func TestRecreatedRowsGetTheirFilesBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("photos/a.jpg", "photos/b.jpg", "photos/c.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'photos/a.jpg', 'photos/b.jpg'), (2, 'photos/c.jpg', '')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	e.expect([]string{".trash/photos/a.jpg", ".trash/photos/b.jpg", ".trash/photos/c.jpg"}, []string{"photos/a.jpg", "photos/b.jpg", "photos/c.jpg"})
	if got := e.journal("photos/a.jpg"); !slices.Equal(got, []string{"trashed"}) {
		t.Fatalf("journal of photos/a.jpg = %q after the delete, want [trashed]", got)
	}

	// The re-sync: the same rows again (one of them only).
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'photos/a.jpg', 'photos/b.jpg')`)
	e.settle()
	e.expect([]string{"photos/a.jpg", "photos/b.jpg", ".trash/photos/c.jpg"}, []string{"photos/c.jpg", ".trash/photos/a.jpg"})
	if got := e.content("photos/a.jpg"); got != "content of photos/a.jpg" {
		t.Fatalf("photos/a.jpg holds %q after the restore", got)
	}
	if got := e.journal("photos/a.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Fatalf("journal of photos/a.jpg = %q, want [trashed restored]", got)
	}
	if !strings.Contains(p.Logs(), `"message":"restored photos/a.jpg: a committed row of public.gallery_photo references it again (column image)"`) {
		t.Errorf("no info line naming the path and the row's table and column:\n%s", p.Logs())
	}

	// history tells the story, newest first; a path never removed is
	// unknown (exit 1).
	out, code := e.cli("history", "photos/a.jpg")
	if code != 0 || strings.Index(out, "restored") > strings.Index(out, "trashed") || !strings.Contains(out, "public.gallery_photo.image") {
		t.Errorf("history photos/a.jpg: exit %d, want 0 listing restored before trashed with the column:\n%s", code, out)
	}
	out, code = e.cli("history", "--json", "--storage", "media", "photos/b.jpg")
	var entries []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 2 || entries[0]["event"] != "restored" {
		t.Errorf("history --json photos/b.jpg: exit %d, want 0 and two entries, restored first:\n%s", code, out)
	}
	if out, code := e.cli("history", "photos/never.jpg"); code != 1 {
		t.Errorf("history of an unknown path: exit %d, want 1:\n%s", code, out)
	}

	// Orphaned again, it goes again; scan counts none of the trash.
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()
	e.expect([]string{".trash/photos/a.jpg", ".trash/photos/b.jpg"}, []string{"photos/a.jpg", "photos/b.jpg"})
	out, code = e.cli("scan", "--min-age", "0s")
	if code != 0 || strings.Contains(out, ".trash") {
		t.Errorf("scan: exit %d, and it must not list the trash:\n%s", code, out)
	}
	out, code = e.cli("status")
	if code != 0 || !strings.Contains(out, "restored") {
		t.Errorf("status: exit %d, want the journal's counts:\n%s", code, out)
	}
}

// TestRecreateRace deletes and re-creates rows with the same paths over
// and over, with gaps from nothing to a few tens of milliseconds, while
// the cleaner runs: whichever way each race goes (the reference check sees
// the new row, or the file is removed and restored), every file a row
// references at the end is present, and every other one is in the trash.
func TestRecreateRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, logLevel: "info"})
	const n = 40
	var all []string
	for i := range n {
		all = append(all, fmt.Sprintf("r/%d.jpg", i))
	}
	e.put(all...)
	for i, path := range all {
		e.exec(`INSERT INTO gallery_photo (id, image) VALUES ($1, $2)`, i, path)
	}
	e.start()
	rng := rand.New(rand.NewPCG(1, 2))
	referenced := map[int]bool{}
	for i := range n {
		referenced[i] = true
	}
	for round := range 6 {
		for i, path := range all {
			if rng.IntN(2) == 0 {
				continue
			}
			e.exec(`DELETE FROM gallery_photo WHERE id = $1`, i)
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			if round == 5 && i%3 == 0 {
				referenced[i] = false // the last round leaves some deleted
				continue
			}
			e.exec(`INSERT INTO gallery_photo (id, image) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, i, path)
		}
	}
	e.settle()
	for i, path := range all {
		switch {
		case referenced[i] && !e.exists(path):
			t.Errorf("%s is referenced and missing; journal %q", path, e.journal(path))
		case !referenced[i] && e.exists(path):
			t.Errorf("%s is orphaned and still present; journal %q", path, e.journal(path))
		case !referenced[i] && !e.exists(".trash/"+path):
			t.Errorf("%s is orphaned and not in the trash", path)
		}
	}
	if f := e.failed(); len(f) != 0 {
		t.Errorf("failed_deletions: %v, want none", f)
	}
}

// TestStaleSaveWritesAnOldPathBack: Django's save() writes every field, so
// a process that loaded the row before another replaced its file writes
// the old path back. The old file comes back; the other process's new
// file is orphaned, correctly.
func TestStaleSaveWritesAnOldPathBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("avatars/old.jpg", "avatars/new.jpg")
	e.exec(`INSERT INTO gallery_photo (id, title, image) VALUES (1, 'me', 'avatars/old.jpg')`)
	e.start()
	e.exec(`UPDATE gallery_photo SET image = 'avatars/new.jpg' WHERE id = 1`) // process B replaces the file
	e.settle()
	e.expect([]string{".trash/avatars/old.jpg"}, []string{"avatars/old.jpg"})
	e.exec(`UPDATE gallery_photo SET title = 'me, renamed', image = 'avatars/old.jpg' WHERE id = 1`) // process A's stale save
	e.settle()
	e.expect([]string{"avatars/old.jpg", ".trash/avatars/new.jpg"}, []string{"avatars/new.jpg"})
	if got := e.content("avatars/old.jpg"); got != "content of avatars/old.jpg" {
		t.Fatalf("avatars/old.jpg holds %q", got)
	}
}

// TestSameKeyReupload: a row is re-created right after the old one was
// deleted, with a new upload under the same deterministic name. Whether
// the upload lands before the cleaner removes the name or after, the new
// content is what the row references at the end, and a restore never
// replaces it.
func TestSameKeyReupload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("avatars/41.jpg", "avatars/42.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (41, 'avatars/41.jpg'), (42, 'avatars/42.jpg')`)
	p := e.start()

	// 41: the upload lands after the removal: the restore finds it and
	// leaves it.
	e.exec(`DELETE FROM gallery_photo WHERE id = 41`)
	e.settle()
	e.expect([]string{".trash/avatars/41.jpg"}, []string{"avatars/41.jpg"})
	if err := os.WriteFile(filepath.Join(e.root, "avatars/41.jpg"), []byte("new upload 41"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (41, 'avatars/41.jpg')`)
	e.settle()
	if got := e.content("avatars/41.jpg"); got != "new upload 41" {
		t.Fatalf("avatars/41.jpg holds %q, want the new upload", got)
	}
	if got := e.journal("avatars/41.jpg"); !slices.Equal(got, []string{"trashed", "occupied"}) {
		t.Fatalf("journal of avatars/41.jpg = %q, want [trashed occupied]", got)
	}
	if !strings.Contains(p.Logs(), "a file exists at avatars/41.jpg: left alone") {
		t.Errorf("no info line saying the new upload won:\n%s", p.Logs())
	}

	// 42: the upload lands before the cleaner comes (stopped meanwhile),
	// so the cleaner moves the new upload to the trash; the re-created
	// row brings it back.
	p.stop()
	e.exec(`DELETE FROM gallery_photo WHERE id = 42`)
	if err := os.WriteFile(filepath.Join(e.root, "avatars/42.jpg"), []byte("new upload 42"), 0o644); err != nil {
		t.Fatal(err)
	}
	var removedAt string
	e.conn().QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&removedAt)
	p = e.start()
	e.settle()
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (42, 'avatars/42.jpg')`)
	e.settle()
	if got := e.content("avatars/42.jpg"); got != "new upload 42" {
		t.Fatalf("avatars/42.jpg holds %q, want the new upload", got)
	}
	p.stop()
}

// TestRestoreAfterRestart: the re-reference arrives while the cleaner is
// stopped; it is restored when the cleaner starts again.
func TestRestoreAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("a.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	p.stop()
	e.expect([]string{".trash/a.jpg"}, []string{"a.jpg"})
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (2, 'a.jpg')`)
	e.start()
	e.settle()
	e.expect([]string{"a.jpg"}, []string{".trash/a.jpg"})
}

// TestDanglingReferenceWithTrashOff: with trash off nothing can come back;
// the re-reference is recorded, counted and logged with its row.
func TestDanglingReferenceWithTrashOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, media: "    trash: false", httpListen: "127.0.0.1:0"})
	e.put("a.jpg", "b.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'), (2, 'b.jpg')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	e.expect(nil, []string{"a.jpg", "b.jpg", ".trash/a.jpg"})
	e.put("b.jpg") // uploaded again: not dangling
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (3, 'a.jpg'), (4, 'b.jpg')`)
	e.settle()
	if got := e.failed(); got["a.jpg"] != "dangling_deleted" || len(got) != 1 {
		t.Fatalf("failed_deletions = %v, want a.jpg as dangling_deleted only", got)
	}
	if !strings.Contains(p.Logs(), "dangling reference: public.gallery_photo.image references a.jpg") {
		t.Errorf("no error line naming the table, column and path:\n%s", p.Logs())
	}
	if got := metric(t, p.httpAddr(t), `cdc_cleaner_dangling_total{storage="media"}`); got != 1 {
		t.Errorf("cdc_cleaner_dangling_total = %v, want 1", got)
	}
	if got := e.journal("b.jpg"); !slices.Equal(got, []string{"deleted", "occupied"}) {
		t.Errorf("journal of b.jpg = %q, want [deleted occupied]", got)
	}
}

// TestScanRemovalsComeBack: what scan --delete removes is journaled as
// run's removals are, so a row that references an orphan right after the
// scan removed it gets the file back.
func TestScanRemovalsComeBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("kept.jpg", "orphan1.jpg", "orphan2.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'kept.jpg')`)
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range []string{"kept.jpg", "orphan1.jpg", "orphan2.jpg"} {
		if err := os.Chtimes(filepath.Join(e.root, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := e.cli("scan", "--delete", "--force"); code != 0 {
		t.Fatalf("scan --delete: exit %d\n%s", code, out)
	}
	e.expect([]string{"kept.jpg", ".trash/orphan1.jpg", ".trash/orphan2.jpg"}, []string{"orphan1.jpg", "orphan2.jpg"})
	if got := e.journal("orphan1.jpg"); !slices.Equal(got, []string{"trashed"}) {
		t.Fatalf("journal of orphan1.jpg after scan --delete = %q, want [trashed]", got)
	}
	e.start()
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (2, 'orphan1.jpg')`)
	e.settle()
	e.expect([]string{"orphan1.jpg", ".trash/orphan2.jpg"}, []string{"orphan2.jpg"})
	if got := e.journal("orphan1.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Fatalf("journal of orphan1.jpg = %q, want [trashed restored]", got)
	}
}
