package integration_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// discoverSchema is an application whose files are referenced by more
// columns than the configuration names: gallery_photo.image (watched), a
// denormalized copy of it (blog_post.cover), the same files as URLs
// (blog_post.cover_url), a jsonb column with paths at files[*].path, a
// mixed-case table and column, a partitioned table, and text that names
// no file (blog_post.title, note.body).
const discoverSchema = photoSchema + `
CREATE TABLE blog_post (id int PRIMARY KEY, title text, cover text, cover_url text);
CREATE TABLE document (id int PRIMARY KEY, attachments jsonb);
CREATE TABLE note (id int PRIMARY KEY, body text);
CREATE TABLE "Legacy" (id int PRIMARY KEY, "Avatar" varchar(200));
CREATE TABLE upload (id int, at date, file text) PARTITION BY RANGE (at);
CREATE TABLE upload_2024 PARTITION OF upload FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE upload_2025 PARTITION OF upload FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO gallery_photo (image, title) SELECT format('photos/%s.jpg', i), format('Photo %s', i) FROM generate_series(1, 12) AS i;
INSERT INTO blog_post SELECT i, format('Post number %s. See photos/%s.jpg', i, i), format('photos/%s.jpg', i),
	format('https://cdn.example.com/media/photos/%s.jpg', i) FROM generate_series(1, 12) AS i;
INSERT INTO document SELECT i, jsonb_build_object('files', jsonb_build_array(jsonb_build_object('path', format('docs/%s.pdf', i), 'name', format('Report %s.pdf', i))))
	FROM generate_series(1, 8) AS i;
INSERT INTO note SELECT i, format('Meeting %s. Bring the v2.%s slides/notes', i, i) FROM generate_series(1, 10) AS i;
INSERT INTO "Legacy" SELECT i, format('avatars/%s.png', i) FROM generate_series(1, 6) AS i;
INSERT INTO upload SELECT i, date '2024-06-01' + i * 30, format('uploads/%s.bin', i) FROM generate_series(1, 10) AS i;`

// discoverFiles are the files the rows of discoverSchema name.
func discoverFiles() []string {
	var out []string
	for i := 1; i <= 12; i++ {
		out = append(out, fmt.Sprintf("photos/%d.jpg", i))
	}
	for i := 1; i <= 8; i++ {
		out = append(out, fmt.Sprintf("docs/%d.pdf", i))
	}
	for i := 1; i <= 6; i++ {
		out = append(out, fmt.Sprintf("avatars/%d.png", i))
	}
	for i := 1; i <= 10; i++ {
		out = append(out, fmt.Sprintf("uploads/%d.bin", i))
	}
	return out
}

// discover runs cdc-cleaner discover and returns its stdout (the YAML)
// and stderr apart.
func (e *env) discover() (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(binary(e.t), "discover", "--config", e.cfgPath)
	cmd.Env = append(cleanEnv(), e.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run cdc-cleaner discover: %v", err)
	}
	return out.String(), errOut.String(), 0
}

// TestDiscoverLocal: discover lists the columns that reference the local
// storage, with YAML that loads back; check fails naming each until that
// YAML is appended to the configuration, then passes.
func TestDiscoverLocal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: discoverSchema, watch: photoWatch})
	e.put(discoverFiles()...)

	out, code := e.cli("check")
	if code != 1 {
		t.Errorf("check before: exit %d, want 1:\n%s", code, out)
	}
	wantContains(t, "check before", out,
		"columns referencing the storages",
		`FAIL     public.blog_post.cover references storage "media" (12 of 12 sampled paths exist) but is neither watched nor protected: add it under protect: {table: public.blog_post, columns: [cover], storage: media}`,
		`public.document.attachments references storage "media"`,
		`json_path: "files[*].path"`,
		`public."Legacy"."Avatar" references storage "media"`,
		`public.upload.file references storage "media"`,
		`public.blog_post.cover_url references storage "media"`, "its values are URLs or absolute paths",
	)
	t.Logf("check before:\n%s", out)

	yaml, stderr, code := e.discover()
	if code != 0 {
		t.Fatalf("discover: exit %d:\n%s\n%s", code, yaml, stderr)
	}
	t.Logf("discover:\n%s", yaml)
	wantContains(t, "discover", yaml,
		`# public.gallery_photo.image: 12 of 12 sampled paths exist in storage "media" (already watched)`,
		`# public.blog_post.cover: 12 of 12 sampled paths exist in storage "media" (NOT configured: the reference check does not see it)`,
		`# public.document.attachments at files[*].path: 8 of 8 sampled paths exist in storage "media" (NOT configured`,
		`"https://cdn.example.com/media/photos/`, `its entry needs`,
		"protect:\n",
		"  - table: public.blog_post\n    columns: [cover]\n    storage: media\n",
		"  - table: public.blog_post\n    columns: [cover_url]\n    strip_prefix: ['https://cdn.example.com/media/']\n    storage: media\n",
		"  - table: public.document\n    columns: [attachments]\n    json_path: \"files[*].path\"\n    storage: media\n",
		"  - table: 'public.\"Legacy\"'\n    columns: ['\"Avatar\"']\n    storage: media\n",
		"  - table: public.upload\n    columns: [file]\n    storage: media\n",
	)
	for _, not := range []string{"title", "note.body", "upload_2024", "thumbnail", "columns: [image"} {
		if strings.Contains(yaml, not) {
			t.Errorf("discover names %q:\n%s", not, yaml)
		}
	}

	// The YAML, appended as printed, makes the configuration complete.
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfgPath, string(cfg)+"\n"+yaml)
	out, code = e.cli("check")
	if code != 0 {
		t.Errorf("check after appending the YAML: exit %d, want 0:\n%s", code, out)
	}
	wantContains(t, "check after", out, "no column that the configuration leaves out references a storage")
	t.Logf("check after:\n%s", out)
	yaml, _, code = e.discover()
	if code != 0 || strings.Contains(yaml, "protect:") || !strings.Contains(yaml, "(already protected)") {
		t.Errorf("discover after: exit %d:\n%s", code, yaml)
	}
}

// TestDiscoverNothingFound: a database whose columns name no file of the
// storage: discover says so (exit 0), and check finds no unconfigured
// column; it fails only because the watched column's files are missing
// too (promise 8's sampling of the configured columns).
func TestDiscoverNothingFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: discoverSchema, watch: photoWatch})
	yaml, stderr, code := e.discover()
	if code != 0 || !strings.Contains(yaml, "# no column references the storages") || strings.Contains(yaml, "protect:") {
		t.Errorf("discover: exit %d:\n%s\n%s", code, yaml, stderr)
	}
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, "1 problems") || !strings.Contains(out, "public.gallery_photo.image: only 0 of 12 sampled paths exist") {
		t.Errorf("check: exit %d, want 1 with the watched column's mapping as its only problem:\n%s", code, out)
	}
	wantContains(t, "check", out, "no column that the configuration leaves out references a storage")
}

// TestDiscoverS3 runs discover against the in-process S3 server.
func TestDiscoverS3(t *testing.T) {
	e, srv, prefix := newS3Env(t, envOptions{schema: discoverSchema, watch: photoWatch}, s3test.Options{})
	for _, p := range discoverFiles() {
		srv.Put(t, prefix+p, []byte(p))
	}
	yaml, stderr, code := e.discover()
	if code != 0 {
		t.Fatalf("discover: exit %d:\n%s\n%s", code, yaml, stderr)
	}
	t.Logf("discover:\n%s", yaml)
	wantContains(t, "discover", yaml,
		`# public.gallery_photo.image: 12 of 12 sampled paths exist in storage "media" (already watched)`,
		`# public.blog_post.cover: 12 of 12 sampled paths exist in storage "media" (NOT configured`,
		"  - table: public.document\n    columns: [attachments]\n    json_path: \"files[*].path\"\n    storage: media\n",
	)
	if strings.Contains(yaml, "note.body") {
		t.Errorf("discover names note.body:\n%s", yaml)
	}
}

// TestDiscoverReadsOnlyWhatTheRoleMay: a role that may read one column
// of one table: discover searches that column and passes over the rest
// without an error, noting how many it could not read: the search is
// incomplete.
func TestDiscoverReadsOnlyWhatTheRoleMay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: discoverSchema, watch: photoWatch})
	e.put(discoverFiles()...)
	role := "reader_" + e.db
	e.exec(fmt.Sprintf(`CREATE ROLE %s LOGIN; GRANT SELECT (id, cover) ON blog_post TO %s`, role, role))
	r := asRole(t, e, role)
	yaml, stderr, code := r.discover()
	if code != 0 {
		t.Fatalf("discover as %s: exit %d:\n%s\n%s", role, code, yaml, stderr)
	}
	wantContains(t, "discover", yaml, "# cdc-cleaner discover: 1 column of 1 table sampled",
		"  - table: public.blog_post\n    columns: [cover]\n    storage: media\n")
	// The other text-like columns: gallery_photo's three, blog_post's
	// title and cover_url, and one each of document, note, "Legacy" and
	// upload.
	wantContains(t, "discover", yaml, `note: role "`+role+`" may not read 9 columns of 6`)
}
