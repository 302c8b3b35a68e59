package refcheck

import (
	"reflect"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

var (
	typeText  = cdccleaner.ColumnType{Kind: cdccleaner.KindText, Base: 25}
	typeArray = cdccleaner.ColumnType{Kind: cdccleaner.KindArray, Base: 1009}
	typeJSONB = cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSONB}
	typeJSON  = cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSON}
)

func mustJSONPath(t *testing.T, s string) cdccleaner.JSONPath {
	t.Helper()
	p, err := cdccleaner.ParseJSONPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustTemplate(t *testing.T, s string) *cdccleaner.Template {
	t.Helper()
	p, err := cdccleaner.ParseTemplate(s, func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestColumnsFormSQLUnchanged: without path, match and strip_prefix, the
// query of every column shape is the one before issue 16, character for
// character, and the jsonb columns' documents fill $2, $3 in order.
func TestColumnsFormSQLUnchanged(t *testing.T) {
	files := mustJSONPath(t, "files[*].path")
	q, err := buildQuery([]cdccleaner.Column{
		{Schema: "public", Table: "t", Name: "v", Type: typeText},
		{Schema: "public", Table: "u", Name: "path", Type: typeArray},
		{Schema: "public", Table: "j", Name: "j", JSONPath: files, Type: typeJSONB},
		{Schema: "public", Table: "c", Name: "c", JSONPath: files, Type: typeJSON},
		{Schema: "x", Table: `Q"q`, Name: "it's", JSONPath: files, Type: typeJSONB},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`SELECT t."v"::text FROM "public"."t" AS t WHERE t."v" = ANY($1::text[])`,
		`SELECT u.path FROM "public"."u" AS t CROSS JOIN LATERAL unnest(t."path"::text[]) AS u(path) WHERE t."path"::text[] && $1::text[] AND u.path = ANY($1::text[])`,
		`SELECT j.v #>> '{}' FROM "public"."j" AS t CROSS JOIN LATERAL jsonb_path_query(t."j", '$."files"[*]."path"') AS j(v) WHERE t."j" @> ANY($2::jsonb[]) AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY($1::text[])`,
		`SELECT j.v #>> '{}' FROM "public"."c" AS t CROSS JOIN LATERAL jsonb_path_query(cdc_cleaner.try_jsonb(t."c"), '$."files"[*]."path"') AS j(v) WHERE t."c" IS NOT NULL AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY($1::text[])`,
		`SELECT c.path FROM unnest($1::text[]) AS c(path) WHERE EXISTS (SELECT 1 FROM "public"."c" AS t WHERE t."c" IS NOT NULL AND cdc_cleaner.try_jsonb(t."c") IS NULL AND (strpos(t."c"::text, c.path) > 0 OR strpos(replace(t."c"::text, '\/', '/'), c.path) > 0))`,
		`SELECT j.v #>> '{}' FROM "x"."Q""q" AS t CROSS JOIN LATERAL jsonb_path_query(t."it's", '$."files"[*]."path"') AS j(v) WHERE t."it's" @> ANY($3::jsonb[]) AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY($1::text[])`,
	}, "\nUNION ALL\n")
	if q.sql != want {
		t.Errorf("SQL\n%s\nwant\n%s", q.sql, want)
	}
	var args []any
	for _, b := range q.binds {
		a, kept := b.fill([]string{"a.jpg"})
		if kept != nil {
			t.Errorf("%s kept %v", b.source, kept)
		}
		args = append(args, a...)
	}
	doc := []string{`{"files":[{"path":"a.jpg"}]}`}
	if !reflect.DeepEqual(args, []any{doc, doc}) {
		t.Errorf("args %#v", args)
	}
}

// TestTemplateQuery: a template entry with match is one EXISTS over the
// values of its columns, compared as text; each way a candidate (or, with
// strip_prefix, a spelling that gives it back) renders fills one row of
// the arrays, with the candidate's position in $1; a candidate the
// template cannot produce fills none; one with too many ways is kept.
func TestTemplateQuery(t *testing.T) {
	c := cdccleaner.Column{Schema: "public", Table: "objects", Template: mustTemplate(t, "{bucket_id}/{name}"),
		Match: []cdccleaner.Match{{Column: "state", Value: "it's live"}}}
	q, err := buildQuery([]cdccleaner.Column{{Schema: "public", Table: "photo", Name: "image", Type: typeText}, c})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT t."image"::text FROM "public"."photo" AS t WHERE t."image" = ANY($1::text[])
UNION ALL
SELECT ($1::text[])[c.i] FROM unnest($2::int[], $3::text[], $4::text[]) AS c(i, v1, v2) WHERE EXISTS (SELECT 1 FROM "public"."objects" AS t WHERE t."bucket_id"::text = c.v1 AND t."name"::text = c.v2 AND t."state"::text = 'it''s live')`
	if q.sql != want {
		t.Errorf("SQL\n%s\nwant\n%s", q.sql, want)
	}
	many := strings.Repeat("x/", MaxAssignments+1) + "x"
	args, kept := q.binds[0].fill([]string{"nodir", "a/b/c", many, "a/b"})
	wantArgs := []any{[]int32{2, 2, 4}, []string{"a", "a/b", "a"}, []string{"b/c", "c", "b"}}
	if !reflect.DeepEqual(args, wantArgs) || !reflect.DeepEqual(kept, []string{many}) {
		t.Errorf("args %v, kept %v; want %v, kept [%s]", args, kept, wantArgs, many)
	}

	// With strip_prefix, the spellings are mapped back, the bare path too.
	c.Template, c.Match, c.StripPrefix = mustTemplate(t, "{key}"), nil, []string{"https://cdn/", "/media/"}
	q, err = buildQuery([]cdccleaner.Column{c})
	if err != nil {
		t.Fatal(err)
	}
	args, kept = q.binds[0].fill([]string{"k1", "k2"})
	wantArgs = []any{[]int32{1, 1, 1, 2, 2, 2}, []string{"https://cdn/k1", "/media/k1", "k1", "https://cdn/k2", "/media/k2", "k2"}}
	if !reflect.DeepEqual(args, wantArgs) || kept != nil {
		t.Errorf("args %v, kept %v; want %v", args, kept, wantArgs)
	}
}

// TestStripPrefixQuery: a column with strip_prefix searches the spellings
// of the candidates that give them back (not "https://cdn/media/a.jpg" for
// a.jpg when "https://cdn/" comes first: that value gives media/a.jpg) and
// maps the values found back to their candidates; match applies inside.
func TestStripPrefixQuery(t *testing.T) {
	c := cdccleaner.Column{Schema: "public", Table: "post", Name: "cover", Type: typeText,
		StripPrefix: []string{"https://cdn/", "https://cdn/media/"}, Match: []cdccleaner.Match{{Column: "kind", Value: "post"}}}
	q, err := buildQuery([]cdccleaner.Column{c})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT ($1::text[])[s.i] FROM (SELECT t."cover"::text FROM "public"."post" AS t WHERE t."cover" = ANY($2::text[]) AND t."kind"::text = 'post') AS f(v) JOIN unnest($2::text[], $3::int[]) AS s(v, i) ON s.v = f.v`
	if q.sql != want {
		t.Errorf("SQL\n%s\nwant\n%s", q.sql, want)
	}
	args, _ := q.binds[0].fill([]string{"a.jpg", "media/a.jpg"})
	// Each candidate's own spellings, and the candidate itself (a row
	// from before the URLs).
	wantArgs := []any{[]string{"https://cdn/a.jpg", "a.jpg", "https://cdn/media/a.jpg", "media/a.jpg"}, []int32{1, 1, 2, 2}}
	if !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("args %v, want %v", args, wantArgs)
	}

	// jsonb: the documents are those of the spellings.
	c = cdccleaner.Column{Schema: "public", Table: "post", Name: "doc", Type: typeJSONB, JSONPath: mustJSONPath(t, "path"), StripPrefix: []string{"/media/"}}
	q, err = buildQuery([]cdccleaner.Column{c})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q.sql, `@> ANY($3::jsonb[])`) || !strings.Contains(q.sql, `= ANY($2::text[])`) || !strings.Contains(q.sql, `unnest($2::text[], $4::int[])`) {
		t.Errorf("SQL %s", q.sql)
	}
	args, _ = q.binds[0].fill([]string{"a.jpg"})
	wantArgs = []any{[]string{"/media/a.jpg", "a.jpg"}, []string{`{"path":"/media/a.jpg"}`, `{"path":"a.jpg"}`}, []int32{1, 1}}
	if !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("args %v, want %v", args, wantArgs)
	}
}
