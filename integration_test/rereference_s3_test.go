package integration_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// Promise 7 on S3: the races of rereference_test.go against the in-process
// S3 server, with the defaults (trash on: copy to PREFIX.trash/PATH, then
// delete). Not parallel: newS3Env sets the AWS_* variables of the process.

// s3Objects reads and writes objects of storage "media" by path.
type s3Objects struct {
	t      *testing.T
	srv    *s3test.Server
	prefix string
}

// content returns the object at path, "" when there is none.
func (o s3Objects) content(path string) string {
	o.t.Helper()
	if !o.srv.Exists(o.t, o.prefix+path) {
		return ""
	}
	return string(o.srv.Get(o.t, o.prefix+path))
}

func (o s3Objects) exists(path string) bool {
	o.t.Helper()
	return o.srv.Exists(o.t, o.prefix+path)
}

func (o s3Objects) put(path, content string) {
	o.t.Helper()
	o.srv.Put(o.t, o.prefix+path, []byte(content))
}

// expect checks which objects exist, by path under the storage's prefix.
func (o s3Objects) expect(present, gone []string) {
	o.t.Helper()
	for _, p := range present {
		if !o.exists(p) {
			o.t.Errorf("object %s is missing; it must be there", p)
		}
	}
	for _, p := range gone {
		if o.exists(p) {
			o.t.Errorf("object %s still exists; it must be gone", p)
		}
	}
}

// expectJournal checks the events the journal holds for each path.
func expectJournal(t *testing.T, e *env, want map[string][]string) {
	t.Helper()
	for path, events := range want {
		if got := e.journal(path); !slices.Equal(got, events) {
			t.Errorf("journal of %s = %q, want %q", path, got, events)
		}
	}
}

// TestS3RecreatedRowsGetTheirObjectsBack: rows deleted and re-created with
// the same keys get their objects back with the same content; orphaned
// again, an object goes to the trash again and comes back a second time.
func TestS3RecreatedRowsGetTheirObjectsBack(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch}, s3test.Options{})
	o := s3Objects{t, srv, prefix}
	for _, p := range []string{"photos/a.jpg", "photos/b.jpg", "photos/c.jpg"} {
		o.put(p, "content of "+p)
	}
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'photos/a.jpg', 'photos/b.jpg'), (2, 'photos/c.jpg', '')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	o.expect([]string{".trash/photos/a.jpg", ".trash/photos/b.jpg", ".trash/photos/c.jpg"}, []string{"photos/a.jpg", "photos/b.jpg", "photos/c.jpg"})
	expectJournal(t, e, map[string][]string{"photos/a.jpg": {"trashed"}, "photos/c.jpg": {"trashed"}})

	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'photos/a.jpg', 'photos/b.jpg')`)
	e.settle()
	o.expect([]string{"photos/a.jpg", "photos/b.jpg", ".trash/photos/c.jpg"}, []string{"photos/c.jpg", ".trash/photos/a.jpg", ".trash/photos/b.jpg"})
	for _, path := range []string{"photos/a.jpg", "photos/b.jpg"} {
		if got := o.content(path); got != "content of "+path {
			t.Errorf("%s holds %q after the restore", path, got)
		}
	}
	expectJournal(t, e, map[string][]string{
		"photos/a.jpg": {"trashed", "restored"},
		"photos/b.jpg": {"trashed", "restored"},
		"photos/c.jpg": {"trashed"},
	})
	if !strings.Contains(p.Logs(), `"message":"restored photos/a.jpg: a committed row of public.gallery_photo references it again (column image)"`) {
		t.Errorf("no info line naming the path and the row's table and column")
	}

	// Orphaned again, then referenced again: a second round trip.
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()
	o.expect([]string{".trash/photos/a.jpg"}, []string{"photos/a.jpg"})
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (3, 'photos/a.jpg')`)
	e.settle()
	if got := o.content("photos/a.jpg"); got != "content of photos/a.jpg" {
		t.Errorf("photos/a.jpg holds %q after the second restore", got)
	}
	expectJournal(t, e, map[string][]string{
		"photos/a.jpg": {"trashed", "restored", "trashed", "restored"},
		"photos/b.jpg": {"trashed", "restored", "trashed"},
	})
	if f := e.failed(); len(f) != 0 {
		t.Errorf("failed_deletions: %v, want none", f)
	}
}

// TestS3StaleSaveWritesAnOldKeyBack: a stale full-row UPDATE writes the old
// key back; the old object comes back, the newer one is orphaned and
// trashed.
func TestS3StaleSaveWritesAnOldKeyBack(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch}, s3test.Options{})
	o := s3Objects{t, srv, prefix}
	o.put("avatars/old.jpg", "old")
	o.put("avatars/new.jpg", "new")
	e.exec(`INSERT INTO gallery_photo (id, title, image) VALUES (1, 'me', 'avatars/old.jpg')`)
	e.start()
	e.exec(`UPDATE gallery_photo SET image = 'avatars/new.jpg' WHERE id = 1`) // process B
	e.settle()
	o.expect([]string{".trash/avatars/old.jpg", "avatars/new.jpg"}, []string{"avatars/old.jpg"})
	e.exec(`UPDATE gallery_photo SET title = 'me, renamed', image = 'avatars/old.jpg' WHERE id = 1`) // process A's stale save
	e.settle()
	o.expect([]string{"avatars/old.jpg", ".trash/avatars/new.jpg"}, []string{"avatars/new.jpg", ".trash/avatars/old.jpg"})
	if got := o.content("avatars/old.jpg"); got != "old" {
		t.Errorf("avatars/old.jpg holds %q, want %q", got, "old")
	}
	if got := o.content(".trash/avatars/new.jpg"); got != "new" {
		t.Errorf("the trash holds %q for avatars/new.jpg, want %q", got, "new")
	}
	expectJournal(t, e, map[string][]string{
		"avatars/old.jpg": {"trashed", "restored"},
		"avatars/new.jpg": {"trashed"},
	})
}

// TestS3SameKeyReupload: after the removal, a new object is uploaded at
// the key and the row re-created: the new object stays (the restore is a
// conditional copy that never replaces it), and the journal says so.
func TestS3SameKeyReupload(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0"}, s3test.Options{})
	o := s3Objects{t, srv, prefix}
	o.put("avatars/42.jpg", "old upload")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (42, 'avatars/42.jpg')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo WHERE id = 42`)
	e.settle()
	o.expect([]string{".trash/avatars/42.jpg"}, []string{"avatars/42.jpg"})
	o.put("avatars/42.jpg", "new upload")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (42, 'avatars/42.jpg')`)
	e.settle()
	if got := o.content("avatars/42.jpg"); got != "new upload" {
		t.Fatalf("avatars/42.jpg holds %q, want the new upload", got)
	}
	if got := o.content(".trash/avatars/42.jpg"); got != "old upload" {
		t.Errorf("the trash holds %q, want the old upload until it is purged", got)
	}
	expectJournal(t, e, map[string][]string{"avatars/42.jpg": {"trashed", "occupied"}})
	if !strings.Contains(p.Logs(), "a file exists at avatars/42.jpg: left alone") {
		t.Errorf("no info line saying the new upload won")
	}
	addr := p.httpAddr(t)
	if got := metric(t, addr, `cdc_cleaner_restored_total{storage="media"}`); got != 0 {
		t.Errorf("cdc_cleaner_restored_total = %v, want 0", got)
	}
	if got := metric(t, addr, `cdc_cleaner_dangling_total{storage="media"}`); got != 0 {
		t.Errorf("cdc_cleaner_dangling_total = %v, want 0", got)
	}
	if f := e.failed(); len(f) != 0 {
		t.Errorf("failed_deletions: %v, want none", f)
	}
}

// TestS3DanglingReferenceWithTrashOff: with trash off an object deleted for
// good cannot come back; its re-reference is recorded as dangling_deleted,
// counted and logged. One uploaded again is not dangling.
func TestS3DanglingReferenceWithTrashOff(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, media: "    trash: false", httpListen: "127.0.0.1:0"}, s3test.Options{})
	o := s3Objects{t, srv, prefix}
	o.put("a.jpg", "a")
	o.put("b.jpg", "b")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'), (2, 'b.jpg')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	o.expect(nil, []string{"a.jpg", "b.jpg", ".trash/a.jpg", ".trash/b.jpg"})
	o.put("b.jpg", "b again")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (3, 'a.jpg'), (4, 'b.jpg')`)
	e.settle()
	if got := e.failed(); got["a.jpg"] != "dangling_deleted" || len(got) != 1 {
		t.Fatalf("failed_deletions = %v, want a.jpg as dangling_deleted only", got)
	}
	if !strings.Contains(p.Logs(), "dangling reference: public.gallery_photo.image references a.jpg") {
		t.Errorf("no error line naming the table, column and path")
	}
	addr := p.httpAddr(t)
	if got := metric(t, addr, `cdc_cleaner_dangling_total{storage="media"}`); got != 1 {
		t.Errorf("cdc_cleaner_dangling_total = %v, want 1", got)
	}
	if got := metric(t, addr, `cdc_cleaner_restored_total{storage="media"}`); got != 0 {
		t.Errorf("cdc_cleaner_restored_total = %v, want 0", got)
	}
	expectJournal(t, e, map[string][]string{
		"a.jpg": {"deleted", "dangling"},
		"b.jpg": {"deleted", "occupied"},
	})
	if got := o.content("b.jpg"); got != "b again" {
		t.Errorf("b.jpg holds %q, want the new upload", got)
	}
}
