package decoder

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// blobsRelation is public.active_storage_blobs(id bigint, key varchar,
// service_name varchar, filename varchar), REPLICA IDENTITY FULL.
func blobsRelation(id uint32) *pglogrepl.RelationMessage {
	return &pglogrepl.RelationMessage{
		RelationID: id, Namespace: "public", RelationName: "active_storage_blobs", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "id", DataType: 20},
			{Flags: 1, Name: "key", DataType: 1043},
			{Flags: 1, Name: "service_name", DataType: 1043},
			{Flags: 1, Name: "filename", DataType: 1043},
		},
	}
}

func mustParse(t *testing.T, s string) *cdccleaner.Template {
	t.Helper()
	tpl, err := cdccleaner.ParseTemplate(s, func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	return &tpl
}

// activeStorage is the Rails recipe: the Disk service's layout for rows of
// service "local", and the key itself on S3 for rows of service "amazon".
func activeStorage(t *testing.T) []cdccleaner.Column {
	return []cdccleaner.Column{
		{Storage: "disk", Schema: "public", Table: "active_storage_blobs", Template: mustParse(t, "{key[0:2]}/{key[2:4]}/{key}"),
			Match: []cdccleaner.Match{{Column: "service_name", Value: "local"}}},
		{Storage: "s3", Schema: "public", Table: "active_storage_blobs", Name: "key",
			Match: []cdccleaner.Match{{Column: "service_name", Value: "amazon"}}},
	}
}

func newBlobsDecoder(t *testing.T, cols []cdccleaner.Column) *Decoder {
	t.Helper()
	d := New(cols)
	mustHandle(t, d, blobsRelation(16500))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 0x2000, Xid: 9})
	return d
}

func TestTemplatesAndMatch(t *testing.T) {
	tests := []struct {
		name       string
		msg        pglogrepl.Message
		want, refs []string
	}{
		{"delete of a local blob",
			&pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png"))},
			[]string{"disk:ab/cd/abcdef"}, nil},
		{"delete of an amazon blob",
			&pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("amazon"), s("a.png"))},
			[]string{"s3:abcdef"}, nil},
		{"delete of a blob of another service",
			&pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("mirror"), s("a.png"))}, nil, nil},
		{"service NULL matches nothing",
			&pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), null, s("a.png"))}, nil, nil},
		{"insert references the rendered path",
			&pglogrepl.InsertMessage{RelationID: 16500, Tuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png"))}, nil, []string{"disk:ab/cd/abcdef"}},
		{"a key too short for the slices renders no path",
			&pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abc"), s("local"), s("a.png"))}, nil, nil},
		{"update of another column changes no path",
			&pglogrepl.UpdateMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png")),
				NewTuple: tuple(s("1"), s("abcdef"), s("local"), s("b.png"))}, nil, nil},
		{"a blob moved to another service leaves the old storage",
			&pglogrepl.UpdateMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png")),
				NewTuple: tuple(s("1"), s("abcdef"), s("amazon"), s("a.png"))}, []string{"disk:ab/cd/abcdef"}, []string{"s3:abcdef"}},
		{"a new key: old path gone, new one referenced",
			&pglogrepl.UpdateMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png")),
				NewTuple: tuple(s("1"), s("uvwxyz"), s("local"), s("a.png"))}, []string{"disk:ab/cd/abcdef"}, []string{"disk:uv/wx/uvwxyz"}},
		{"an unchanged TOASTed key is taken from the old row",
			&pglogrepl.UpdateMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png")),
				NewTuple: tuple(s("1"), s(toast), s("amazon"), s("a.png"))}, []string{"disk:ab/cd/abcdef"}, []string{"s3:abcdef"}},
		{"everything read unchanged and TOASTed",
			&pglogrepl.UpdateMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png")),
				NewTuple: tuple(s("1"), s(toast), s(toast), s("b.png"))}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newBlobsDecoder(t, activeStorage(t))
			ev := mustHandle(t, d, tt.msg)
			if got := paths(ev); !slices.Equal(got, tt.want) {
				t.Errorf("candidates = %q, want %q", got, tt.want)
			}
			if got := refPaths(ev); !slices.Equal(got, tt.refs) {
				t.Errorf("references = %q, want %q", got, tt.refs)
			}
			for _, c := range slices.Concat(ev.Candidates, ev.References) {
				if c.Storage == "disk" && c.Source != "public.active_storage_blobs.{key[0:2]}/{key[2:4]}/{key}" ||
					c.Storage == "s3" && c.Source != "public.active_storage_blobs.key" {
					t.Errorf("source %q", c.Source)
				}
			}
		})
	}
}

// TestTemplateOfSeveralColumns: a path from two columns vanishes when
// either changes.
func TestTemplateOfSeveralColumns(t *testing.T) {
	cols := []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "active_storage_blobs", Template: mustParse(t, "{service_name}/{key}.{filename}")}}
	d := newBlobsDecoder(t, cols)
	ev := mustHandle(t, d, &pglogrepl.UpdateMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("k"), s("local"), s("a.png")),
		NewTuple: tuple(s("1"), s("k"), s("local"), s("b.png"))})
	if got, refs := paths(ev), refPaths(ev); !slices.Equal(got, []string{"media:local/k.a.png"}) || !slices.Equal(refs, []string{"media:local/k.b.png"}) {
		t.Errorf("candidates %q, references %q", got, refs)
	}
	ev = mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("k"), null, s("a.png"))})
	if got := paths(ev); got != nil {
		t.Errorf("a NULL column renders no path; got %q", got)
	}
}

// TestTemplateOldValuesMissing: without REPLICA IDENTITY FULL an old row
// carries only the key; a template or match over other columns cannot be
// rendered, which is reported as missed, never guessed.
func TestTemplateOldValuesMissing(t *testing.T) {
	d := New(activeStorage(t))
	rel := blobsRelation(16500)
	rel.ReplicaIdentity = 'd'
	for _, c := range rel.Columns {
		c.Flags = 0
	}
	rel.Columns[0].Flags = 1 // id is the key
	ev := mustHandle(t, d, rel)
	if len(ev.Warnings) != 2 || !strings.Contains(ev.Warnings[0], `public.active_storage_blobs.{key[0:2]}/{key[2:4]}/{key} reads "key", "service_name", not all part of it`) {
		t.Errorf("warnings: %q", ev.Warnings)
	}
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 0x2000, Xid: 9})
	ev = mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'K', OldTuple: tuple(s("1"), null, null, null)})
	if len(ev.Candidates) != 0 || len(ev.Missed) != 2 {
		t.Errorf("candidates %q, missed %+v; want none and both entries missed", paths(ev), ev.Missed)
	}
}

func TestStripPrefix(t *testing.T) {
	cols := tables([]Table{{Schema: "public", Name: "gallery_photo", Columns: []string{"image", "thumbnail"}, Storage: "media"}})
	for i := range cols {
		cols[i].StripPrefix = []string{"https://cdn.example.com/media/", "/media/"}
	}
	d := New(cols)
	mustHandle(t, d, photoRelation(16400))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 0x1000, Xid: 7})
	ev := mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O',
		OldTuple: tuple(s("1"), s("https://cdn.example.com/media/a/b.jpg"), s("https://elsewhere.example.com/x.jpg"), s("t"))})
	if got := paths(ev); !slices.Equal(got, []string{"media:a/b.jpg"}) {
		t.Errorf("candidates %q", got)
	}
	if want := []Unprefixed{{Storage: "media", Source: "public.gallery_photo.thumbnail"}}; !slices.Equal(ev.Unprefixed, want) {
		t.Errorf("unprefixed %+v, want %+v", ev.Unprefixed, want)
	}
	ev = mustHandle(t, d, &pglogrepl.InsertMessage{RelationID: 16400, Tuple: tuple(s("2"), s("/media/c.jpg"), s("/media/"), s("t"))})
	if got := refPaths(ev); !slices.Equal(got, []string{"media:c.jpg"}) || len(ev.Unprefixed) != 1 {
		t.Errorf("references %q (a bare prefix is no path), unprefixed %+v", got, ev.Unprefixed)
	}
	// A URL that changes only its base leaves the same path.
	ev = mustHandle(t, d, &pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O',
		OldTuple: tuple(s("1"), s("https://cdn.example.com/media/a.jpg"), null, s("t")),
		NewTuple: tuple(s("1"), s("/media/a.jpg"), null, s("t"))})
	if len(ev.Candidates) != 0 || len(ev.References) != 0 {
		t.Errorf("candidates %q, references %q; want none", paths(ev), refPaths(ev))
	}
}

func TestTemplateColumnTypes(t *testing.T) {
	rel := blobsRelation(16500)
	rel.Columns[1].DataType = 3802 // key jsonb
	_, err := New(activeStorage(t)).Handle(rel)
	var se *SchemaError
	if !errors.As(err, &se) || se.Column != "key" || !strings.Contains(se.Problem, "a template's columns are text") {
		t.Errorf("jsonb template column: %v", err)
	}
	rel = blobsRelation(16500)
	rel.Columns[2].Name = "service"
	_, err = New(activeStorage(t)).Handle(rel)
	if !errors.As(err, &se) || se.Column != "service_name" || !se.Missing {
		t.Errorf("missing match column: %v", err)
	}
	// A boolean is sent as "t" and cast to text as "true": match compares
	// text columns only, so decoding and the reference check agree.
	for _, oid := range []uint32{16, 23} {
		rel = blobsRelation(16500)
		rel.Columns[2].DataType = oid
		// As the catalog describes them (pipeline: ResolveType).
		_, err = New(activeStorage(t), Types(map[uint32]cdccleaner.ColumnType{oid: {Kind: cdccleaner.KindNone}})).Handle(rel)
		if !errors.As(err, &se) || se.Column != "service_name" || !strings.Contains(se.Problem, "match compares text") {
			t.Errorf("match column of type %d: %v", oid, err)
		}
	}
}

// candidateList writes candidates as storage:path, with <parent for a
// derived one, in order.
func candidateList(cs []cdccleaner.Candidate) []string {
	var out []string
	for _, c := range cs {
		s := c.Storage + ":" + c.Path
		if c.Parent != "" {
			s += "<" + c.Parent
		}
		out = append(out, s)
	}
	return out
}

// TestDerived: a removed path brings its derived files and prefixes along,
// rendered from the removed row (or from the path, for an entry of one
// column); a new reference brings them too, for the restore.
func TestDerived(t *testing.T) {
	variants, err := cdccleaner.ParseDerivedTemplate("va/ri/variants/{key}/", func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	preview, err := cdccleaner.ParseDerivedTemplate("previews/{key[0:2]}/{key}.png", func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	cols := activeStorage(t)
	cols[0].Derived = []cdccleaner.Template{variants, preview}
	d := newBlobsDecoder(t, cols)
	ev := mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 16500, OldTupleType: 'O', OldTuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png"))})
	want := []string{"disk:ab/cd/abcdef", "disk:va/ri/variants/abcdef/<ab/cd/abcdef", "disk:previews/ab/abcdef.png<ab/cd/abcdef"}
	if got := candidateList(ev.Candidates); !slices.Equal(got, want) {
		t.Errorf("candidates %q, want %q", got, want)
	}
	if !ev.Candidates[1].IsPrefix() || ev.Candidates[2].IsPrefix() || ev.Candidates[0].IsPrefix() {
		t.Errorf("prefixes: %v %v %v", ev.Candidates[0].IsPrefix(), ev.Candidates[1].IsPrefix(), ev.Candidates[2].IsPrefix())
	}
	ev = mustHandle(t, d, &pglogrepl.InsertMessage{RelationID: 16500, Tuple: tuple(s("1"), s("abcdef"), s("local"), s("a.png"))})
	if got := candidateList(ev.References); !slices.Equal(got, want) {
		t.Errorf("references %q, want %q", got, want)
	}

	// An entry of one column: the derived file is named from the path.
	thumbs, err := cdccleaner.ParseDerivedTemplate("thumbs/{image}.jpg", func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	photo := tables([]Table{{Schema: "public", Name: "gallery_photo", Columns: []string{"image"}, Storage: "media"}})
	photo[0].Derived = []cdccleaner.Template{thumbs}
	photo[0].StripPrefix = []string{"/media/"}
	pd := New(photo)
	mustHandle(t, pd, photoRelation(16400))
	mustHandle(t, pd, &pglogrepl.BeginMessage{FinalLSN: 0x1000, Xid: 7})
	ev = mustHandle(t, pd, &pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("/media/a/b.jpg"), null, s("t")),
		NewTuple: tuple(s("1"), s("/media/c.jpg"), null, s("t"))})
	if got := candidateList(ev.Candidates); !slices.Equal(got, []string{"media:a/b.jpg", "media:thumbs/a/b.jpg.jpg<a/b.jpg"}) {
		t.Errorf("candidates %q", got)
	}
	if got := candidateList(ev.References); !slices.Equal(got, []string{"media:c.jpg", "media:thumbs/c.jpg.jpg<c.jpg"}) {
		t.Errorf("references %q", got)
	}
}
