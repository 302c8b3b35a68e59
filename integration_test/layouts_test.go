package integration_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// Issue 16 end to end, through `cdc-cleaner run` on real files and the
// in-process S3 server: layouts that are not "the column is the path".

// TestLayoutTemplatesAndURLs: a path built from two columns with literal
// text around them, and a column of URLs. A file referenced both through
// the template and through a plain column of the same storage is kept; a
// value without any of the prefixes is no path and deletes nothing, but a
// plain path that an older row holds keeps its file.
func TestLayoutTemplatesAndURLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{httpListen: "127.0.0.1:0", schema: `
CREATE TABLE attachment (id int PRIMARY KEY, bucket_id text, name text);
CREATE INDEX ON attachment (bucket_id, name);
CREATE TABLE post (id int PRIMARY KEY, cover_url text);
CREATE INDEX ON post (cover_url);
CREATE TABLE legacy (id int PRIMARY KEY, file text);`, watch: `watch:
  - table: attachment
    path: "files/{bucket_id}/{name}.bin"
    storage: media
  - table: post
    columns: [cover_url]
    strip_prefix: ["https://cdn.example.com/media/", "/media/"]
    storage: media
protect:
  - table: legacy
    columns: [file]
    storage: media`})
	all := []string{"files/7/a.bin", "files/7/b/c.bin", "files/8/shared.bin", "covers/1.jpg", "covers/2.jpg", "covers/3.jpg", "elsewhere.jpg"}
	e.put(all...)
	e.exec(`INSERT INTO attachment VALUES (1, '7', 'a'), (2, '7', 'b/c'), (3, '8', 'shared'), (4, NULL, 'x')`)
	e.exec(`INSERT INTO legacy VALUES (1, 'files/8/shared.bin')`)
	e.exec(`INSERT INTO post VALUES (1, 'https://cdn.example.com/media/covers/1.jpg'), (2, '/media/covers/2.jpg'),
		(3, 'https://cdn.example.com/media/covers/3.jpg'), (4, 'https://elsewhere.example.com/elsewhere.jpg'),
		(5, 'covers/1.jpg')`) // a row from before the application stored URLs
	if out, code := e.cli("check"); code != 0 {
		t.Fatalf("check exited %d:\n%s", code, out)
	}
	p := e.start()
	addr := p.httpAddr(t)
	e.exec(`UPDATE attachment SET name = 'a2' WHERE id = 1`)                 // files/7/a.bin vanished
	e.exec(`DELETE FROM attachment WHERE id IN (2, 3, 4)`)                   // files/7/b/c.bin; shared stays (legacy); NULL: no file
	e.exec(`DELETE FROM post WHERE id IN (1, 2, 4)`)                         // covers/1.jpg and covers/2.jpg; the other site's URL is no path
	e.exec(`UPDATE post SET cover_url = '/media/covers/3.jpg' WHERE id = 3`) // the same file under another prefix
	e.settle()
	e.expect([]string{"files/8/shared.bin", "covers/1.jpg", "covers/3.jpg", "elsewhere.jpg"},
		[]string{"files/7/a.bin", "files/7/b/c.bin", "covers/2.jpg"})
	_, body := get(t, "http://"+addr+"/metrics")
	if got := metricValue(body, `cdc_cleaner_unprefixed_values_total{storage="media"}`); got != 3 {
		t.Errorf("unprefixed values %v, want 3 (the other site's URL, inserted and deleted; the old row's plain path)", got)
	}
	p.stop()

	// A template the table cannot satisfy is refused with the field, the
	// template and the problem.
	bad := newEnv(t, envOptions{noSetup: true, schema: `CREATE TABLE blobs (id int PRIMARY KEY, key text, meta jsonb);`, watch: `watch:
  - table: blobs
    path: "{kye[0:2]}/{kye}"
    storage: media
  - table: blobs
    path: "{meta}"
    storage: media`})
	out, code := bad.cli("check")
	if code != 1 {
		t.Errorf("check of bad templates exited %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{`watch[0].path: "{kye[0:2]}/{kye}": column "kye" not found in public.blobs`,
		`watch[1].path: "{meta}": column "meta" of public.blobs has type jsonb: a template's columns are text`} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// TestLayoutS3MatchAndDerivedPrefix: two storages share one table (match
// on service_name), and on S3 a derived prefix goes to the trash with its
// object and comes back with it.
func TestLayoutS3MatchAndDerivedPrefix(t *testing.T) {
	local := t.TempDir()
	srv := s3test.Start(t, s3test.Options{})
	prefix := srv.Prefix() + "media/"
	e := newEnv(t, envOptions{storages: fmt.Sprintf(`storages:
  disk:
    type: local
    root: %s
  media:
    type: s3
    bucket: %s
    prefix: %s
    region: %s
    endpoint: %s
    path_style: true`, local, srv.Bucket(), prefix, srv.Region(), srv.Endpoint()),
		schema: `CREATE TABLE active_storage_blobs (id bigserial PRIMARY KEY, key varchar NOT NULL, service_name varchar NOT NULL);
CREATE UNIQUE INDEX ON active_storage_blobs (key);`, watch: `watch:
  - table: active_storage_blobs
    path: "{key[0:2]}/{key[2:4]}/{key}"
    match: {service_name: local}
    storage: disk
  - table: active_storage_blobs
    columns: [key]
    derived: ["variants/{key}/"]
    match: {service_name: amazon}
    storage: media`})
	e.env = srv.Env()
	o := s3Objects{t, srv, prefix}
	for _, k := range []string{"s3key1", "s3key2", "variants/s3key1/a", "variants/s3key1/b/c", "variants/s3key10/x", "localkey"} {
		o.put(k, "content of "+k)
	}
	for _, p := range []string{"lo/ca/localkey", "s3/ke/s3key1"} {
		if err := os.MkdirAll(local+"/"+p[:6], 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, local+"/"+p, p)
	}
	e.exec(`INSERT INTO active_storage_blobs (key, service_name) VALUES ('s3key1', 'amazon'), ('s3key2', 'amazon'), ('localkey', 'local')`)
	p := e.start()
	// A blob of each service deleted: each storage loses only its own.
	e.exec(`DELETE FROM active_storage_blobs WHERE key IN ('s3key1', 'localkey')`)
	e.settle()
	o.expect([]string{"s3key2", "variants/s3key10/x", "localkey", ".trash/s3key1", ".trash/variants/s3key1/a", ".trash/variants/s3key1/b/c"},
		[]string{"s3key1", "variants/s3key1/a", "variants/s3key1/b/c"})
	if fileExists(local + "/lo/ca/localkey") {
		t.Error("the local blob's file is still in place")
	}
	if !fileExists(local + "/s3/ke/s3key1") {
		t.Error("a local file that only an amazon blob's key maps to was removed")
	}
	// The S3 blob's row comes back: its object and its variants too.
	e.exec(`INSERT INTO active_storage_blobs (key, service_name) VALUES ('s3key1', 'amazon')`)
	e.settle()
	o.expect([]string{"s3key1", "variants/s3key1/a", "variants/s3key1/b/c"}, nil)
	expectJournal(t, e, map[string][]string{"variants/s3key1/b/c": {"trashed", "restored"}})
	p.stop()
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
