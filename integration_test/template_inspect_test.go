package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
	"github.com/cdc-cleaner/cdc-cleaner/sample"
)

// inspectBlobsSchema is Rails 6.1's active_storage_blobs as its migration makes
// it (the columns that matter), with a jsonb column for the bad template.
const inspectBlobsSchema = `CREATE TABLE active_storage_blobs (
	id bigserial PRIMARY KEY,
	key character varying NOT NULL,
	filename character varying NOT NULL,
	service_name character varying NOT NULL,
	metadata jsonb,
	public boolean);
CREATE UNIQUE INDEX index_active_storage_blobs_on_key ON active_storage_blobs (key);`

// TestInspectTemplates: check's inspection says which index serves a
// template's reference check (or that none does, and what to create), and
// names the field, the template and the problem for a template or a match
// that the table cannot satisfy.
func TestInspectTemplates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: inspectBlobsSchema, noSetup: true, watch: `watch:
  - table: active_storage_blobs
    path: "{key[0:2]}/{key[2:4]}/{key}"
    match: {service_name: local}
    storage: media
  - table: active_storage_blobs
    path: "{service_name}/{filename}"
    storage: media
  - table: active_storage_blobs
    path: "{kye[0:2]}/{kye}"
    storage: media
  - table: active_storage_blobs
    path: "{metadata}"
    storage: media
  - table: active_storage_blobs
    columns: [key]
    match: {servce_name: amazon}
    storage: media
  - table: active_storage_blobs
    columns: [filename]
    match: {public: "true"}
    storage: media`})
	cfg, err := config.Load(e.cfgPath, cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	report, err := provision.Inspect(context.Background(), e.conn(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range report.Findings {
		all = append(all, f.String())
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		`watch[0].path: "{key[0:2]}/{key[2:4]}/{key}": the reference check maps each path back to key and looks rows up by them; an index on key serves it`,
		`watch[1].path: "{service_name}/{filename}": no index starts with service_name or filename`,
		`CREATE INDEX ON "public"."active_storage_blobs" ("service_name", "filename")`,
		`watch[2].path: "{kye[0:2]}/{kye}": column "kye" not found in public.active_storage_blobs`,
		`watch[3].path: "{metadata}": column "metadata" of public.active_storage_blobs has type jsonb: a template's columns are text`,
		`watch[4].match.servce_name: column "servce_name" not found in public.active_storage_blobs`,
		`watch[5].match.public: column "public" of public.active_storage_blobs has type boolean: match compares text, varchar or character columns`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("findings lack %q:\n%s", want, text)
		}
	}
	var sources []string
	for _, c := range report.Columns {
		sources = append(sources, c.Source())
	}
	if len(report.Columns) != 2 || !report.Columns[0].Indexed || report.Columns[1].Indexed {
		t.Errorf("inspected entries %q (indexed %v); want the first two, the first served by an index", sources, report.Columns)
	}
}

// TestSampleThroughTemplates: promise 8's sampling (check, scan's
// refusals) renders a template's paths from sampled rows of its match, so
// Active Storage's Disk layout is found in the storage and a wrong layout
// is not; a URL column's values are sampled without their prefix.
func TestSampleThroughTemplates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: inspectBlobsSchema + `CREATE TABLE post (id serial PRIMARY KEY, cover_url text);`, noSetup: true, watch: `watch:
  - table: active_storage_blobs
    path: "{key[0:2]}/{key[2:4]}/{key}"
    match: {service_name: local}
    storage: media
  - table: active_storage_blobs
    path: "{key}"
    match: {service_name: local}
    storage: media
  - table: post
    columns: [cover_url]
    strip_prefix: ["https://cdn.example.com/media/"]
    storage: media`})
	for i := range 40 {
		key := fmt.Sprintf("k%027d", i)
		e.exec(`INSERT INTO active_storage_blobs (key, filename, service_name) VALUES ($1, 'a.png', 'local'), ($2, 'b.png', 'amazon')`, key, "s3"+key)
		e.put(key[0:2] + "/" + key[2:4] + "/" + key)
		e.exec(`INSERT INTO post (cover_url) VALUES ($1)`, fmt.Sprintf("https://cdn.example.com/media/covers/%d.jpg", i))
		e.put(fmt.Sprintf("covers/%d.jpg", i))
	}
	cfg, err := config.Load(e.cfgPath, cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	report, err := provision.Inspect(context.Background(), e.conn(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := local.New(e.root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn := e.conn()
	for i, want := range []struct{ present, wrong bool }{{true, false}, {false, true}, {true, false}} {
		r, err := sample.Column(context.Background(), conn, st, report.Columns[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.Values == 0 || (r.Present == r.Paths) != want.present || r.Wrong() != want.wrong {
			t.Errorf("%s: %d values, %d paths, %d present, wrong %v (absent e.g. %q); want present %v, wrong %v",
				report.Columns[i].Source(), r.Values, r.Paths, r.Present, r.Wrong(), r.Absent, want.present, want.wrong)
		}
	}
}
