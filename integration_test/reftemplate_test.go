package integration_test

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/catalog"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
	"github.com/cdc-cleaner/cdc-cleaner/migrations"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
)

// Tests of the reference check (and of the reads of non-canonical values
// scan makes) for the layouts of issue 16: path templates, match and
// strip_prefix. They build the columns as config and inspection would and
// call refcheck directly against a database of their own.

// blobsSchema is Rails Active Storage's blobs table (the columns
// the cleaner reads), with the unique index Rails creates on key.
const blobsSchema = `CREATE TABLE active_storage_blobs (
	id bigserial PRIMARY KEY,
	key character varying NOT NULL,
	filename character varying NOT NULL DEFAULT 'f',
	service_name character varying NOT NULL DEFAULT 'local');
CREATE UNIQUE INDEX index_active_storage_blobs_on_key ON active_storage_blobs (key);`

// activeStoragePath is the Disk service's layout.
const activeStoragePath = "{key[0:2]}/{key[2:4]}/{key}"

// refDB creates a database holding schema and cdc_cleaner's own schema
// (try_jsonb), and returns its URL and a pool on it whose connections
// tracer sees (when not nil).
func refDB(t *testing.T, schema string, tracer pgx.QueryTracer) (string, *pgxpool.Pool) {
	t.Helper()
	_, url := cluster.NewDatabase(t)
	pgtest.Exec(t, url, migrations.Schema)
	if schema != "" {
		pgtest.Exec(t, url, schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return url, pool
}

// tmpl parses a path template as the configuration does.
func tmpl(t *testing.T, s string) *cdccleaner.Template {
	t.Helper()
	p, err := cdccleaner.ParseTemplate(s, config.ParseIdentifier)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

// newChecker builds the reference check of cols on pool, its logs going
// to the test's log and to the returned buffer.
func newChecker(t *testing.T, pool *pgxpool.Pool, cols []cdccleaner.Column, opts ...refcheck.Option) (*refcheck.Checker, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	log := zerolog.New(zerolog.MultiLevelWriter(&logs, zerolog.TestWriter{T: t}))
	refs, err := refcheck.New(pool, cols, append([]refcheck.Option{refcheck.Logger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return refs, &logs
}

// expectReferenced asks refs which of the paths in want are referenced in
// storage, in one batch, and compares with want.
func expectReferenced(t *testing.T, refs *refcheck.Checker, storage string, want map[string]bool) {
	t.Helper()
	paths := slices.Sorted(maps.Keys(want))
	got, err := refs.Referenced(context.Background(), storage, paths)
	if err != nil {
		t.Fatalf("Referenced(%s): %v\n%s", storage, err, refs.SQL(storage))
	}
	for _, p := range paths {
		if got[p] != want[p] {
			t.Errorf("storage %s: %q referenced = %v, want %v", storage, p, got[p], want[p])
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("storage %s: %q referenced, but it was not asked about", storage, p)
		}
	}
}

// argsTracer records the arguments of the queries whose SQL is sql.
type argsTracer struct {
	mu   sync.Mutex
	sql  string
	args [][]any
}

func (a *argsTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sql != "" && d.SQL == a.sql {
		a.args = append(a.args, d.Args)
	}
	return ctx
}

func (a *argsTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestRefTemplateActiveStorage: Active Storage's Disk service stores a
// blob at {key[0:2]}/{key[2:4]}/{key}. The reference check maps a path
// back to key and looks key up through Rails' unique index (EXPLAIN says
// so, with the arguments the check sent): the path of a blob row is
// referenced; the path of a key no row has is not; nor is a path the
// template cannot produce (a key without its directories, one directory
// too many), nor one whose directories disagree with the key although a
// row has that key.
func TestRefTemplateActiveStorage(t *testing.T) {
	t.Parallel()
	tracer := &argsTracer{}
	url, pool := refDB(t, blobsSchema, tracer)
	// As many rows as a real application's, so that the planner weighs the
	// index against reading the table.
	pgtest.Exec(t, url, `INSERT INTO active_storage_blobs (key) SELECT md5(i::text) FROM generate_series(1, 20000) AS i;
		INSERT INTO active_storage_blobs (key) VALUES ('xyzw0123'), ('ab');
		ANALYZE active_storage_blobs`)
	refs, _ := newChecker(t, pool, []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "active_storage_blobs",
		Template: tmpl(t, activeStoragePath), Field: "watch[0].path"}})
	tracer.mu.Lock()
	tracer.sql = refs.SQL("media")
	tracer.mu.Unlock()
	k1 := "c4ca4238a0b923820dcc509a6f75849b" // md5('1')
	expectReferenced(t, refs, "media", map[string]bool{
		"c4/ca/" + k1:     true,
		"xy/zw/xyzw0123":  true,
		"00/00/0000nokey": false, // no row has this key
		k1:                false, // the template cannot produce it
		"c4/ca/x/" + k1:   false, // nor this
		"xx/zw/xyzw0123":  false, // slices disagree with the key
		"xy/zz/xyzw0123":  false,
		"ab//ab":          false, // "ab"[2:4] is beyond the value: no file
	})
	if !strings.Contains(refs.SQL("media"), `t."key"::text = c.v1`) {
		t.Errorf("the query does not compare key:\n%s", refs.SQL("media"))
	}

	tracer.mu.Lock()
	calls := slices.Clone(tracer.args)
	tracer.mu.Unlock()
	if len(calls) != 1 {
		t.Fatalf("%d reference queries seen, want 1", len(calls))
	}
	rows, err := pool.Query(context.Background(), "EXPLAIN "+refs.SQL("media"), calls[0]...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "index_active_storage_blobs_on_key") || strings.Contains(plan, "Seq Scan on active_storage_blobs") {
		t.Errorf("the lookup of key does not use index_active_storage_blobs_on_key:\n%s", plan)
	}
	t.Logf("plan:\n%s", plan)
}

// TestRefTemplateTwoColumnsAmbiguousPath: with {bucket_id}/{name}, the
// path a/b/c is bucket a with object b/c, or bucket a/b with object c.
// Only the second has a row, and it keeps the file; each split is searched
// in the same query.
func TestRefTemplateTwoColumnsAmbiguousPath(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, `CREATE TABLE objects (id serial PRIMARY KEY, bucket_id text, name text);
		CREATE INDEX ON objects (bucket_id, name);`, nil)
	pgtest.Exec(t, url, `INSERT INTO objects (bucket_id, name) VALUES ('a/b', 'c'), ('q', 'r/s'), ('e', NULL), ('', 'f')`)
	refs, _ := newChecker(t, pool, []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "objects",
		Template: tmpl(t, "{bucket_id}/{name}"), Field: "protect[0].path", Protect: true}})
	expectReferenced(t, refs, "media", map[string]bool{
		"a/b/c": true,  // bucket a/b, name c
		"q/r/s": true,  // bucket q, name r/s
		"a/b/d": false, // neither split has a row
		"a/b":   false, // bucket a, name b: no row
		"e/":    false, // a NULL or empty column is no file
		"/f":    false,
		"abc":   false, // no "/": the template cannot produce it
	})
}

// TestRefTemplateIncompleteReverseKeeps: a path that {a}-{b} maps back in
// more than refcheck.MaxAssignments ways is kept without a query (no row
// references it, so a check that searched some of the ways would let it
// go), and a warning names it. A path with few ways is searched.
func TestRefTemplateIncompleteReverseKeeps(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, `CREATE TABLE parts (id serial PRIMARY KEY, a text, b text)`, nil)
	pgtest.Exec(t, url, `INSERT INTO parts (a, b) VALUES ('x', 'y-z')`)
	refs, logs := newChecker(t, pool, []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "parts",
		Template: tmpl(t, "{a}-{b}"), Field: "watch[0].path"}})
	many := strings.Repeat("p-", refcheck.MaxAssignments+1) + "p"
	expectReferenced(t, refs, "media", map[string]bool{
		many:    true,
		"x-y-z": true,  // a x, b y-z
		"x-y-w": false, // two ways, neither has a row
	})
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), many) || !strings.Contains(logs.String(), "kept as referenced") {
		t.Errorf("no warning names the path kept without a query:\n%s", logs.String())
	}
}

// TestRefMatchTwoStoragesShareTable: Active Storage rows of two services
// share the blobs table. The local service's entry is a template with
// match service_name: local (storage media), the S3 service's is the key
// column with match service_name: amazon (storage bucket). Neither storage
// sees the other's rows, although both search the same keys.
func TestRefMatchTwoStoragesShareTable(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, blobsSchema, nil)
	pgtest.Exec(t, url, `INSERT INTO active_storage_blobs (key, service_name) VALUES
		('localkey1', 'local'), ('amazonkey', 'amazon'), ('bothkey01', 'local')`)
	refs, _ := newChecker(t, pool, []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "active_storage_blobs", Template: tmpl(t, activeStoragePath),
			Match: []cdccleaner.Match{{Column: "service_name", Value: "local"}}, Field: "watch[0].path"},
		{Storage: "bucket", Schema: "public", Table: "active_storage_blobs", Name: "key", Type: typeText,
			Match: []cdccleaner.Match{{Column: "service_name", Value: "amazon"}}, Field: "watch[1].columns[0]"},
	})
	expectReferenced(t, refs, "media", map[string]bool{
		"lo/ca/localkey1": true,
		"bo/th/bothkey01": true,
		"am/az/amazonkey": false, // an amazon row
	})
	expectReferenced(t, refs, "bucket", map[string]bool{
		"amazonkey": true,
		"localkey1": false, // a local row
		"bothkey01": false,
	})
	// A row moving to the other service moves its reference with it.
	pgtest.Exec(t, url, `UPDATE active_storage_blobs SET service_name = 'amazon' WHERE key = 'bothkey01'`)
	expectReferenced(t, refs, "media", map[string]bool{"bo/th/bothkey01": false})
	expectReferenced(t, refs, "bucket", map[string]bool{"bothkey01": true})
}

// TestRefMatchEveryForm: match on a text, an array, a jsonb and a json
// column (including json that jsonb refuses, searched as text) and on a
// template: only the rows whose kind is 'avatar' count, whatever their
// other columns hold. The match column is character(10), compared as
// its text (without the padding).
func TestRefMatchEveryForm(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, `CREATE TABLE upload (id serial PRIMARY KEY, kind character(10), file text, files text[], doc jsonb, legacy json, dir text, name text)`, nil)
	pgtest.Exec(t, url, `INSERT INTO upload (kind, file, files, doc, legacy, dir, name) VALUES
		('avatar', 'text/a.jpg', ARRAY['arr/a.jpg'], '{"files":[{"path":"jsonb/a.jpg"}]}', '{"files":[{"path":"json/a.jpg"}]}', 'tpl', 'a.jpg'),
		('cover', 'text/c.jpg', ARRAY['arr/c.jpg'], '{"files":[{"path":"jsonb/c.jpg"}]}', '{"files":[{"path":"json/c.jpg"}]}', 'tpl', 'c.jpg'),
		(NULL, 'text/n.jpg', ARRAY['arr/n.jpg'], '{"files":[{"path":"jsonb/n.jpg"}]}', '{"files":[{"path":"json/n.jpg"}]}', 'tpl', 'n.jpg'),
		('avatar', NULL, NULL, NULL, '{"note":"\u0000 json/bad-a.jpg"}', NULL, NULL),
		('cover', NULL, NULL, NULL, '{"note":"\u0000 json/bad-c.jpg"}', NULL, NULL)`)
	avatar := []cdccleaner.Match{{Column: "kind", Value: "avatar"}}
	files := jsonPath("files[*].path")
	refs, _ := newChecker(t, pool, []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "upload", Name: "file", Type: typeText, Match: avatar},
		{Storage: "media", Schema: "public", Table: "upload", Name: "files", Type: typeArray, Match: avatar},
		{Storage: "media", Schema: "public", Table: "upload", Name: "doc", Type: typeJSONB, JSONPath: files, Match: avatar},
		{Storage: "media", Schema: "public", Table: "upload", Name: "legacy", Type: typeJSON, JSONPath: files, Match: avatar},
		{Storage: "media", Schema: "public", Table: "upload", Template: tmpl(t, "{dir}/{name}"), Match: avatar},
	})
	want := map[string]bool{}
	for _, dir := range []string{"text", "arr", "jsonb", "json", "tpl"} {
		want[dir+"/a.jpg"] = true
		want[dir+"/c.jpg"] = false
		want[dir+"/n.jpg"] = false
	}
	want["json/bad-a.jpg"], want["json/bad-c.jpg"] = true, false
	expectReferenced(t, refs, "media", want)
}

// TestRefStripPrefix: columns holding URLs and /media/ paths, with
// strip_prefix [https://cdn.example.com/media/, /media/]: a text, a text[],
// a jsonb and a json column. A value with one of the prefixes references
// the path after it; a bare path references itself too (rows written
// before the application stored URLs: a file they name is kept, though by
// the contract such a value is never deleted), another site's URL
// references nothing. With prefixes where one begins another, a value
// references what its first prefix leaves.
func TestRefStripPrefix(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, `CREATE TABLE post (id serial PRIMARY KEY, cover text, gallery text[], doc jsonb, legacy json, link text);
		CREATE INDEX ON post (cover);`, nil)
	pgtest.Exec(t, url, `INSERT INTO post (cover, gallery, doc, legacy, link) VALUES
		('https://cdn.example.com/media/t/a.jpg', ARRAY['https://cdn.example.com/media/g/a.jpg', '/media/g/b.jpg', 'g/c.jpg', NULL],
		 '{"files":[{"path":"/media/j/a.jpg"},{"path":"j/c.jpg"}]}', '{"files":[{"path":"https://cdn.example.com/media/l/a.jpg"},{"path":"l/c.jpg"}]}',
		 'https://cdn.example.com/x/a.jpg'),
		('/media/t/b.jpg', NULL, NULL, '{"path":"\u0000 https:\/\/cdn.example.com\/media\/l\/bad.jpg"}', 'https://cdn.example.com/media/x/b.jpg'),
		('t/c.jpg', NULL, NULL, NULL, NULL),
		('https://other.example.com/media/t/d.jpg', NULL, NULL, NULL, NULL),
		('/media/', NULL, NULL, NULL, NULL)`)
	strip := []string{"https://cdn.example.com/media/", "/media/"}
	files := jsonPath("files[*].path")
	refs, _ := newChecker(t, pool, []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "post", Name: "cover", Type: typeText, StripPrefix: strip},
		{Storage: "media", Schema: "public", Table: "post", Name: "gallery", Type: typeArray, StripPrefix: strip},
		{Storage: "media", Schema: "public", Table: "post", Name: "doc", Type: typeJSONB, JSONPath: files, StripPrefix: strip},
		{Storage: "media", Schema: "public", Table: "post", Name: "legacy", Type: typeJSON, JSONPath: files, StripPrefix: strip},
		// The first prefix that a value starts with is stripped.
		{Storage: "links", Schema: "public", Table: "post", Name: "link", Type: typeText,
			StripPrefix: []string{"https://cdn.example.com/", "https://cdn.example.com/media/"}},
	})
	expectReferenced(t, refs, "media", map[string]bool{
		"t/a.jpg": true, "t/b.jpg": true, "t/c.jpg": true, "t/d.jpg": false, "media/t/a.jpg": false,
		"g/a.jpg": true, "g/b.jpg": true, "g/c.jpg": true,
		"j/a.jpg": true, "j/c.jpg": true,
		"l/a.jpg": true, "l/c.jpg": true, "l/bad.jpg": true,
		"": false,
	})
	expectReferenced(t, refs, "links", map[string]bool{
		"x/a.jpg": true, "media/x/b.jpg": true, "x/b.jpg": false,
	})
}

// TestRefTemplateSharedWithPlainColumn: one file of storage media is both
// an Active Storage blob (a template entry) and the value of a plain
// column. Removing either reference keeps it; removing both lets it go.
func TestRefTemplateSharedWithPlainColumn(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, blobsSchema+`
		CREATE TABLE legacy_upload (id serial PRIMARY KEY, file text);`, nil)
	pgtest.Exec(t, url, `INSERT INTO active_storage_blobs (key) VALUES ('sharedkey'), ('blobonly1');
		INSERT INTO legacy_upload (file) VALUES ('sh/ar/sharedkey'), ('co/lu/columnonly')`)
	refs, _ := newChecker(t, pool, []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "active_storage_blobs", Template: tmpl(t, activeStoragePath), Field: "watch[0].path"},
		{Storage: "media", Schema: "public", Table: "legacy_upload", Name: "file", Type: typeText, Field: "protect[0].columns[0]", Protect: true},
	})
	expectReferenced(t, refs, "media", map[string]bool{
		"sh/ar/sharedkey": true, "bl/ob/blobonly1": true, "co/lu/columnonly": true, "no/ne/nonekey": false,
	})
	pgtest.Exec(t, url, `DELETE FROM active_storage_blobs WHERE key = 'sharedkey'`)
	expectReferenced(t, refs, "media", map[string]bool{"sh/ar/sharedkey": true})
	pgtest.Exec(t, url, `INSERT INTO active_storage_blobs (key) VALUES ('sharedkey'); DELETE FROM legacy_upload WHERE file = 'sh/ar/sharedkey'`)
	expectReferenced(t, refs, "media", map[string]bool{"sh/ar/sharedkey": true})
	pgtest.Exec(t, url, `DELETE FROM active_storage_blobs WHERE key = 'sharedkey'`)
	expectReferenced(t, refs, "media", map[string]bool{"sh/ar/sharedkey": false})
}

// TestRefResolveKeepsEntriesThatMatchTellsApart: two template entries of
// one table and one storage that match tells apart (two Active Storage
// Disk services on one root), and two entries of one column likewise,
// through the catalog's Resolver as run checks them. Each entry's rows
// keep their files: the Resolver used to keep one entry per storage, table
// and column name, and dropped the second.
func TestRefResolveKeepsEntriesThatMatchTellsApart(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, blobsSchema, nil)
	pgtest.Exec(t, url, `INSERT INTO active_storage_blobs (key, service_name) VALUES ('localkey1', 'local'), ('mirrorkey', 'mirror'), ('otherkey1', 'other')`)
	cols := []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "active_storage_blobs", Template: tmpl(t, activeStoragePath),
			Match: []cdccleaner.Match{{Column: "service_name", Value: "local"}}, Field: "watch[0].path"},
		{Storage: "media", Schema: "public", Table: "active_storage_blobs", Template: tmpl(t, activeStoragePath),
			Match: []cdccleaner.Match{{Column: "service_name", Value: "mirror"}}, Field: "watch[1].path"},
		{Storage: "bucket", Schema: "public", Table: "active_storage_blobs", Name: "key", Type: typeText,
			Match: []cdccleaner.Match{{Column: "service_name", Value: "local"}}, Field: "watch[2].columns[0]"},
		{Storage: "bucket", Schema: "public", Table: "active_storage_blobs", Name: "key", Type: typeText,
			Match: []cdccleaner.Match{{Column: "service_name", Value: "mirror"}}, Field: "watch[3].columns[0]"},
	}
	resolver := catalog.NewResolver(pool, cols)
	refs, _ := newChecker(t, pool, cols, refcheck.Resolve(resolver.Resolve))
	expectReferenced(t, refs, "media", map[string]bool{"lo/ca/localkey1": true, "mi/rr/mirrorkey": true, "ot/he/otherkey1": false})
	expectReferenced(t, refs, "bucket", map[string]bool{"localkey1": true, "mirrorkey": true, "otherkey1": false})
}

// TestSpellingsOfTemplatesMatchAndStripPrefix: what scan reads as values
// that are not canonical paths, for the layouts of issue 16. A template
// entry gives the path it renders ("b/./x.jpg" from bucket b and name
// ./x.jpg), only from the rows its match keeps; a row with a NULL or empty
// column, or a slice beyond its value, gives none. A strip_prefix column
// gives the path after the prefix when that is not canonical, and nothing
// for a value without the prefixes (another site's URL) or whose path is
// canonical. check's count reads the same values.
func TestSpellingsOfTemplatesMatchAndStripPrefix(t *testing.T) {
	t.Parallel()
	url, pool := refDB(t, `CREATE TABLE objects (id serial PRIMARY KEY, bucket_id text, name text, state text);
		CREATE TABLE post (id serial PRIMARY KEY, cover text, gallery text[], kind text);`, nil)
	pgtest.Exec(t, url, `INSERT INTO objects (bucket_id, name, state) VALUES
		('b', './x.jpg', 'live'), ('b', 'ok.jpg', 'live'), ('b', '/y.jpg', 'gone'), ('/c', 'z.jpg', 'live'), ('', '/e.jpg', 'live'), ('b', NULL, 'live'),
		('ab', 'short', 'live'), ('q', '/a', 'gone');
		INSERT INTO post (cover, gallery, kind) VALUES
		('https://cdn.example.com/media//u.jpg', ARRAY['/media/./v.jpg', '/media/w.jpg', 'https://other.example.com//o.jpg'], 'post'),
		('/media/ok.jpg', ARRAY['./bare.jpg'], 'post'),
		('https://other.example.com/a//b.jpg', NULL, 'post'),
		('/media/sub/../q.jpg', NULL, 'draft')`)
	strip := []string{"https://cdn.example.com/media/", "/media/"}
	live := []cdccleaner.Match{{Column: "state", Value: "live"}}
	posts := []cdccleaner.Match{{Column: "kind", Value: "post"}}
	cols := []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "objects", Template: tmpl(t, "{bucket_id}/{name}"), Match: live},
		{Storage: "slices", Schema: "public", Table: "objects", Template: tmpl(t, "{name[0:2]}/{name[2:4]}/{name}")},
		{Storage: "urls", Schema: "public", Table: "post", Name: "cover", Type: typeText, StripPrefix: strip, Match: posts},
		{Storage: "urls", Schema: "public", Table: "post", Name: "gallery", Type: typeArray, StripPrefix: strip, Match: posts},
	}
	sp, err := refcheck.NewSpellings(pool, cols)
	if err != nil {
		t.Fatal(err)
	}
	read := func(storage string) []string {
		t.Helper()
		var got []string
		if err := sp.Read(context.Background(), storage, func(_, v string) error { got = append(got, v); return nil }); err != nil {
			t.Fatalf("read %s: %v", storage, err)
		}
		slices.Sort(got)
		return got
	}
	for storage, want := range map[string][]string{
		"media":  {"/c/z.jpg", "b/./x.jpg"},
		"slices": {".//x././x.jpg", "/e/.j//e.jpg", "/y/.j//y.jpg"},
		"urls":   {"./v.jpg", "/u.jpg"},
	} {
		if got := read(storage); !slices.Equal(got, want) {
			t.Errorf("storage %s: read %q, want %q", storage, got, want)
		}
	}
	for i, want := range []int64{2, 3, 1, 1} {
		q, err := refcheck.SpellingCountSQL(cols[i])
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var example *string
		if err := pool.QueryRow(context.Background(), q, cdccleaner.NonCanonicalPattern).Scan(&n, &example); err != nil {
			t.Fatalf("count of %s: %v", cols[i].Source(), err)
		}
		if n != want {
			t.Errorf("count of %s: %d, want %d", cols[i].Source(), n, want)
		}
	}
}
