package integration_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// newS3Env is newEnv with storage "media" on an S3-compatible server: the
// in-process one (with faults), or CDC_TEST_S3_ENDPOINT. These tests are not
// parallel: s3test.Start sets the AWS_* variables of the test process.
func newS3Env(t *testing.T, o envOptions, faults s3test.Options) (*env, *s3test.Server, string) {
	t.Helper()
	srv := s3test.Start(t, faults)
	prefix := srv.Prefix() + "media/"
	o.storages = fmt.Sprintf(`storages:
  media:
    type: s3
    bucket: %s
    prefix: %s
    region: %s
    endpoint: %s
    path_style: true
%s`, srv.Bucket(), prefix, srv.Region(), srv.Endpoint(), o.media)
	e := newEnv(t, o)
	e.env = srv.Env()
	return e, srv, prefix
}

func TestS3EndToEnd(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{
		schema: photoSchema + `CREATE TABLE blog_post (id int PRIMARY KEY, cover text);`,
		watch: photoWatch + `
  - table: blog_post
    columns: [cover]
    storage: media`,
	}, s3test.Options{})
	for _, p := range []string{"a.jpg", "a_new.jpg", "b.jpg", "b_thumb.jpg", "rolled_back.jpg", "shared.jpg", "été ✓/with space+plus.jpg"} {
		srv.Put(t, prefix+p, []byte(p))
	}
	// Objects outside the prefix that hostile rows point at.
	outside := []string{srv.Prefix() + "outside.jpg", srv.Prefix() + "mediaoutside.jpg"}
	for _, k := range outside {
		srv.Put(t, k, []byte("not ours"))
	}
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES
		(1, 'a.jpg', ''), (2, 'b.jpg', 'b_thumb.jpg'), (3, 'rolled_back.jpg', ''), (4, 'shared.jpg', ''),
		(5, 'été ✓/with space+plus.jpg', ''),
		(10, '../outside.jpg', ''), (11, '/outside.jpg', ''), (12, '..', ''), (13, 'x/../../outside.jpg', '')`)
	e.exec(`INSERT INTO blog_post VALUES (1, 'shared.jpg')`)
	e.start()
	e.exec(`UPDATE gallery_photo SET image = 'a_new.jpg' WHERE id = 1`)
	e.exec(`DELETE FROM gallery_photo WHERE id IN (2, 4, 5, 10, 11, 12, 13)`)
	e.exec(`BEGIN; DELETE FROM gallery_photo WHERE id = 3; ROLLBACK`)
	e.settle()

	exists := func(p string) bool { return srv.Exists(t, prefix+p) }
	for _, p := range []string{"a_new.jpg", "rolled_back.jpg", "shared.jpg"} {
		if !exists(p) {
			t.Errorf("%s was deleted; it must be kept", p)
		}
	}
	for _, p := range []string{"a.jpg", "b.jpg", "b_thumb.jpg", "été ✓/with space+plus.jpg"} {
		if exists(p) {
			t.Errorf("%s still exists; it must be deleted", p)
		}
	}
	for _, k := range outside {
		if !srv.Exists(t, k) {
			t.Errorf("object %s outside the prefix was deleted", k)
		}
	}
	if srv.Fake() {
		for _, k := range srv.ReceivedKeys() {
			if !strings.HasPrefix(k, prefix) {
				t.Errorf("the cleaner sent key %q, outside its prefix %q", k, prefix)
			}
		}
	}
	failed := e.failed()
	for _, p := range []string{"../outside.jpg", "/outside.jpg", "..", "x/../../outside.jpg"} {
		if failed[p] != "rejected_path" {
			t.Errorf("failed_deletions[%q] = %q, want rejected_path", p, failed[p])
		}
	}
}

// TestS3RefusalsAreRecordedAndThrottlingIsRetried: per-key AccessDenied
// inside a 200 is recorded with the S3 code and does not block the stream;
// a server answering 503 SlowDown for a while only delays deletions; the
// server requires Content-MD5 throughout.
func TestS3RefusalsAreRecordedAndThrottlingIsRetried(t *testing.T) {
	var throttleUntil atomic.Int64
	// Trash off: the test counts DeleteObjects requests.
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, media: "    trash: false"}, s3test.Options{
		RequireContentMD5: true,
		KeyError: func(key string) (string, string) {
			if strings.Contains(key, "denied") {
				return "AccessDenied", "Access Denied"
			}
			return "", ""
		},
		Throttle: func() bool { return time.Now().UnixNano() < throttleUntil.Load() },
	})
	srv.RequireFake(t)
	for _, p := range []string{"ok/1.jpg", "denied/2.jpg", "ok/3.jpg", "later/4.jpg"} {
		srv.Put(t, prefix+p, []byte(p))
	}
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'ok/1.jpg'), (2, 'denied/2.jpg'), (3, 'ok/3.jpg'), (4, 'later/4.jpg')`)
	e.start()
	e.exec(`DELETE FROM gallery_photo WHERE id IN (1, 2, 3)`)
	e.settle()
	if srv.Exists(t, prefix+"ok/1.jpg") || srv.Exists(t, prefix+"ok/3.jpg") {
		t.Errorf("deletable objects are still there")
	}
	if !srv.Exists(t, prefix+"denied/2.jpg") {
		t.Errorf("the refused object is gone")
	}
	if got := e.failed()["denied/2.jpg"]; got != "s3_access_denied" {
		t.Errorf("failed_deletions[denied/2.jpg] = %q, want s3_access_denied", got)
	}

	// Throttle every request for 3 seconds; the deletion happens after.
	before := srv.Requests(s3test.OpDeleteObjects)
	throttleUntil.Store(time.Now().Add(3 * time.Second).UnixNano())
	e.exec(`DELETE FROM gallery_photo WHERE id = 4`)
	e.settle()
	if srv.Exists(t, prefix+"later/4.jpg") {
		t.Errorf("later/4.jpg survived the throttling")
	}
	if n := srv.Requests(s3test.OpDeleteObjects) - before; n < 2 {
		t.Errorf("%d DeleteObjects requests during throttling, want retries", n)
	}
	if _, ok := e.failed()["later/4.jpg"]; ok {
		t.Errorf("a throttled deletion was recorded as failed")
	}
}

// TestS3CheckAndTrash: check reports the bucket reachable and deletable;
// trash mode copies to the trash prefix before deleting.
func TestS3CheckAndTrash(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, media: `    trash: true`}, s3test.Options{})
	if out, code := e.cli("check"); code != 0 || !strings.Contains(out, "may delete under prefix") {
		t.Fatalf("check: exit %d:\n%s", code, out)
	}
	srv.Put(t, prefix+"t/1.jpg", []byte("one"))
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 't/1.jpg')`)
	e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	if srv.Exists(t, prefix+"t/1.jpg") {
		t.Errorf("t/1.jpg still exists")
	}
	if got := string(srv.Get(t, prefix+".trash/t/1.jpg")); got != "one" {
		t.Errorf("trash holds %q, want %q", got, "one")
	}
}
