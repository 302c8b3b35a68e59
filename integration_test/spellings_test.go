package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

// spellingSchema: a text column (watched), a text[] column (watched), a
// jsonb column (protect) and a json column (protect) referencing the local
// storage "media", and a text column referencing the S3 storage "bucket".
const spellingSchema = `CREATE TABLE upload (id serial PRIMARY KEY, file text, files text[], doc jsonb);
CREATE TABLE s3_upload (id serial PRIMARY KEY, url text);
CREATE TABLE legacy (id serial PRIMARY KEY, doc json);`

const spellingWatch = `watch:
  - table: upload
    columns: [file, files]
    storage: media
  - table: s3_upload
    columns: [url]
    storage: bucket
protect:
  - table: upload
    columns: [doc]
    json_path: "files[*].path"
    storage: media
  - table: legacy
    columns: [doc]
    json_path: "path"
    storage: media`

// TestScanKeepsFilesNamedByNonCanonicalValues is issue 12, item 6: rows
// holding "./dot.jpg", "sub//dbl.jpg", "/media/abs.jpg" and the http URL of
// an S3 object (path-style, as the in-process server serves it) name
// dot.jpg, sub/dbl.jpg, abs.jpg and the object. scan --delete deleted them
// all, since the reference check compares values exactly. Now it keeps
// every file such a value could name, the dry run reports the same, the
// true orphans go; check warns about the values with an example.
func TestScanKeepsFilesNamedByNonCanonicalValues(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	prefix := srv.Prefix() + "media/"
	e := newEnv(t, envOptions{schema: spellingSchema, watch: spellingWatch, storages: fmt.Sprintf(`storages:
  media:
    type: local
    root: {{root}}
  bucket:
    type: s3
    bucket: %s
    prefix: %s
    region: %s
    endpoint: %s
    path_style: true`, srv.Bucket(), prefix, srv.Region(), srv.Endpoint())})
	e.env = srv.Env()

	local := []string{"dot.jpg", "sub/dbl.jpg", "abs.jpg", "arr/a.jpg", "json/j.jpg", "legacy/u.jpg", "canon.jpg", "orphan.jpg"}
	e.put(local...)
	e.exec(`INSERT INTO upload (file, files, doc) VALUES
		('./dot.jpg', NULL, NULL), ('sub//dbl.jpg', NULL, NULL), ('/media/abs.jpg', NULL, NULL),
		('canon.jpg', ARRAY['arr/./a.jpg', ''], '{"files":[{"path":"/media/json/j.jpg"}]}')`)
	// json that jsonb refuses (\u0000): the reference check searches its
	// text, which does not hold "legacy/u.jpg".
	e.exec(`INSERT INTO legacy (doc) VALUES ('{"path":"legacy//u.jpg","note":"\u0000"}')`)
	url := srv.Endpoint() + "/" + srv.Bucket() + "/" + prefix + "obj.jpg"
	srv.Put(t, prefix+"obj.jpg", []byte("object"))
	srv.Put(t, prefix+"orphan.jpg", []byte("orphan"))
	e.exec(`INSERT INTO s3_upload (url) VALUES ($1)`, url)
	if srv.Fake() {
		// The URL is the object's, as the server serves it.
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "object" {
			t.Fatalf("GET %s: %s %q, want the object", url, resp.Status, body)
		}
	}

	// check: warnings with an example and what it could name; exit 0.
	out, code := e.cli("check")
	t.Logf("check:\n%s", out)
	if code != 0 {
		t.Errorf("check exited %d, want 0 (warnings do not change it):\n%s", code, out)
	}
	wantContains(t, "check", out,
		`warning  watch[0].columns[0]: "public"."upload"."file" holds 3 values that are not canonical paths`,
		`e.g. "./dot.jpg", which could name dot.jpg`,
		`watch[0].columns[1]: "public"."upload"."files" holds 1 value that is not a canonical path`, `e.g. "arr/./a.jpg", which could name a.jpg, arr/a.jpg.`,
		`protect[0].columns[0]: "public"."upload"."doc" holds 1 value`, `e.g. "/media/json/j.jpg", which could name j.jpg, json/j.jpg, media/json/j.jpg.`,
		`protect[1].columns[0]: "public"."legacy"."doc" holds 1 value`, `e.g. "legacy//u.jpg"`,
		`watch[1].columns[0]: "public"."s3_upload"."url" holds 1 value`, "which could name obj.jpg, media/obj.jpg,",
		"scan keeps every file such a value could name", "run compares values exactly")

	// Dry run and --delete, local storage.
	keptLocal := slices.DeleteFunc(slices.Clone(local), func(p string) bool { return p == "orphan.jpg" })
	out, code = e.cli("scan", "--storage", "media", "--min-age", "0s")
	if code != 0 {
		t.Fatalf("scan exited %d:\n%s", code, out)
	}
	if got := firstFields(orphanLines(out)); !slices.Equal(got, []string{"orphan.jpg"}) {
		t.Errorf("dry run listed %q, want only orphan.jpg:\n%s", got, out)
	}
	out, code = e.cli("scan", "--storage", "media", "--min-age", "0s", "--delete")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	e.expect(keptLocal, []string{"orphan.jpg"})
	wantContains(t, "scan --delete", out, "deleted 1,", "6 values are not canonical paths")

	// Dry run and --delete, S3.
	out, code = e.cli("scan", "--storage", "bucket", "--min-age", "0s")
	if code != 0 {
		t.Fatalf("scan exited %d:\n%s", code, out)
	}
	if got := firstFields(orphanLines(out)); !slices.Equal(got, []string{"orphan.jpg"}) {
		t.Errorf("dry run listed %q, want only orphan.jpg:\n%s", got, out)
	}
	out, code = e.cli("scan", "--storage", "bucket", "--min-age", "0s", "--delete")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	if !srv.Exists(t, prefix+"obj.jpg") {
		t.Errorf("obj.jpg, whose URL a row holds, was deleted:\n%s", out)
	}
	if srv.Exists(t, prefix+"orphan.jpg") {
		t.Errorf("the orphaned object is still there:\n%s", out)
	}

	// run logs the same warnings at startup.
	p := e.start()
	p.waitLog(`holds 3 values that are not canonical paths`, 30*time.Second)
}

// TestScanRefusesTooManyNonCanonicalValues: a column with more distinct
// non-canonical values than scan holds in memory makes it refuse (exit 1,
// naming the column and an example) before it deletes anything; check,
// given too little time to read the table, says it did not check it.
func TestScanRefusesTooManyNonCanonicalValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: `CREATE TABLE upload (id serial PRIMARY KEY, file text);`, watch: `watch:
  - table: upload
    columns: [file]
    storage: media`})
	e.exec(`INSERT INTO upload (file) SELECT './f' || i || '.jpg' FROM generate_series(1, 100001) AS i`)
	e.put("orphan.jpg")
	out, code := e.cli("scan", "--min-age", "0s", "--delete")
	if code != 1 {
		t.Errorf("scan --delete exited %d, want 1", code)
	}
	wantContains(t, "scan --delete", out, "public.upload.file holds more than 100000 distinct values that are not canonical paths (e.g. \"./f")
	e.expect([]string{"orphan.jpg"}, nil)

	ctx := context.Background()
	cfg, err := config.Load(e.cfgPath, cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	conn := e.conn()
	report, err := provision.Inspect(ctx, conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	provision.InspectSpellings(ctx, conn, cfg, report, time.Millisecond)
	var msgs []string
	for _, f := range report.Warnings() {
		msgs = append(msgs, f.String())
	}
	wantContains(t, "warnings", strings.Join(msgs, "\n"), `watch[0].columns[0]: "public"."upload"."file": not checked for values that are not canonical paths: the table is too large to read within 1ms`)
}
