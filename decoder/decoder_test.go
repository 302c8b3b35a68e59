package decoder

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// tuple builds a TupleData from values: nil is NULL, "\x00u" is an
// unchanged TOASTed value, anything else text.
func tuple(vals ...*string) *pglogrepl.TupleData {
	td := &pglogrepl.TupleData{ColumnNum: uint16(len(vals))}
	for _, v := range vals {
		switch {
		case v == nil:
			td.Columns = append(td.Columns, &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeNull})
		case *v == toast:
			td.Columns = append(td.Columns, &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeToast})
		default:
			td.Columns = append(td.Columns, &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(*v)), Data: []byte(*v)})
		}
	}
	return td
}

const toast = "\x00u"

func s(v string) *string { return &v }

var null *string

// photoRelation is public.gallery_photo(id int, image varchar, thumbnail varchar, title text).
func photoRelation(id uint32) *pglogrepl.RelationMessage {
	return &pglogrepl.RelationMessage{
		RelationID: id, Namespace: "public", RelationName: "gallery_photo", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "id", DataType: 23},
			{Flags: 1, Name: "image", DataType: 1043},
			{Flags: 1, Name: "thumbnail", DataType: 1043},
			{Flags: 1, Name: "title", DataType: 25},
		},
	}
}

func newPhotoDecoder(t *testing.T) *Decoder {
	t.Helper()
	d := New(tables([]Table{{Schema: "public", Name: "gallery_photo", Columns: []string{"image", "thumbnail"}, Storage: "media"}}))
	mustHandle(t, d, photoRelation(16400))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 0x1000, Xid: 7})
	return d
}

func mustHandle(t *testing.T, d *Decoder, m pglogrepl.Message) Event {
	t.Helper()
	ev, err := d.Handle(m)
	if err != nil {
		t.Fatalf("handle %T: %v", m, err)
	}
	return ev
}

func paths(ev Event) []string {
	var out []string
	for _, c := range ev.Candidates {
		out = append(out, c.Storage+":"+c.Path)
	}
	slices.Sort(out)
	return out
}

func TestRowChanges(t *testing.T) {
	tests := []struct {
		name string
		msg  pglogrepl.Message
		want []string
	}{
		{"insert adds references only",
			&pglogrepl.InsertMessage{RelationID: 16400, Tuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))}, nil},
		{"update of the file column",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("c.jpg"), s("b.jpg"), s("t"))}, []string{"media:a.jpg"}},
		{"update of another column",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("new title"))}, nil},
		{"unchanged TOASTed file column is unchanged",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s(toast), s(toast), s("t2"))}, nil},
		{"old value not sent means nothing vanished",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s(toast), null, s("t")),
				NewTuple: tuple(s("1"), s("z.jpg"), null, s("t"))}, nil},
		{"update without old tuple",
			&pglogrepl.UpdateMessage{RelationID: 16400, NewTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))}, nil},
		{"cleared to empty string (Django) and to NULL",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s(""), null, s("t"))}, []string{"media:a.jpg", "media:b.jpg"}},
		{"set from empty and NULL",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s(""), null, s("t")),
				NewTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))}, nil},
		{"swap between columns is reported per column (the reference check keeps both)",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("b.jpg"), s("a.jpg"), s("t"))}, []string{"media:a.jpg", "media:b.jpg"}},
		{"delete",
			&pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))},
			[]string{"media:a.jpg", "media:b.jpg"}},
		{"delete of a row sharing one path in two columns",
			&pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("a.jpg"), s("t"))},
			[]string{"media:a.jpg", "media:a.jpg"}},
		{"delete with NULL and empty",
			&pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s(""), null, s("t"))}, nil},
		{"unicode and spaces",
			&pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("fotos/été 2024/✓ x.jpg"), null, s("t"))},
			[]string{"media:fotos/été 2024/✓ x.jpg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPhotoDecoder(t)
			ev := mustHandle(t, d, tt.msg)
			if ev.Kind != KindChange {
				t.Fatalf("kind = %v, want KindChange", ev.Kind)
			}
			if got := paths(ev); !slices.Equal(got, tt.want) {
				t.Fatalf("candidates = %q, want %q", got, tt.want)
			}
			for _, c := range ev.Candidates {
				if c.Txn != 1 || c.CommitLSN != 0x1000 || !strings.HasPrefix(c.Source, "public.gallery_photo.") {
					t.Fatalf("candidate %+v: want txn 1, commit LSN 0/1000 and a source column", c)
				}
			}
		})
	}
}

func TestRelationRefreshMatchesColumnsByName(t *testing.T) {
	d := newPhotoDecoder(t)
	// The table was rebuilt with its columns in another order.
	mustHandle(t, d, &pglogrepl.RelationMessage{
		RelationID: 16400, Namespace: "public", RelationName: "gallery_photo", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "title", DataType: 25},
			{Flags: 1, Name: "thumbnail", DataType: 1043},
			{Flags: 1, Name: "image", DataType: 1043},
			{Flags: 1, Name: "id", DataType: 23},
		},
	})
	ev := mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("title"), s("b.jpg"), s("a.jpg"), s("1"))})
	if got := paths(ev); !slices.Equal(got, []string{"media:a.jpg", "media:b.jpg"}) {
		t.Fatalf("candidates = %q, want media:a.jpg and media:b.jpg", got)
	}
	// thumbnail dropped: the configuration no longer fits the table.
	_, err := d.Handle(&pglogrepl.RelationMessage{
		RelationID: 16400, Namespace: "public", RelationName: "gallery_photo", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{
			{Flags: 1, Name: "title", DataType: 25},
			{Flags: 1, Name: "image", DataType: 1043},
			{Flags: 1, Name: "id", DataType: 23},
		},
	})
	var se *SchemaError
	if !errors.As(err, &se) || se.Column != "thumbnail" {
		t.Fatalf("relation without thumbnail: %v, want a SchemaError naming it", err)
	}
}

func TestPartialReplicaIdentityIsWarned(t *testing.T) {
	d := New(tables([]Table{{Schema: "public", Name: "gallery_photo", Columns: []string{"image"}, Storage: "media"}}))
	rel := photoRelation(1)
	rel.ReplicaIdentity = 'd'
	rel.Columns[1].Flags = 0
	ev := mustHandle(t, d, rel)
	if len(ev.Warnings) != 1 || !strings.Contains(ev.Warnings[0], "REPLICA IDENTITY FULL") {
		t.Fatalf("warnings = %q", ev.Warnings)
	}
}

func TestUnwatchedTableIsIgnored(t *testing.T) {
	d := newPhotoDecoder(t)
	mustHandle(t, d, &pglogrepl.RelationMessage{RelationID: 99, Namespace: "public", RelationName: "other",
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "image", DataType: 25}}})
	ev := mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 99, OldTupleType: 'O', OldTuple: tuple(s("a.jpg"))})
	if len(ev.Candidates) != 0 {
		t.Fatalf("candidates from an unwatched table: %v", ev.Candidates)
	}
}

func TestProtocolErrors(t *testing.T) {
	d := New(nil)
	if _, err := d.Handle(&pglogrepl.DeleteMessage{RelationID: 5, OldTupleType: 'O', OldTuple: tuple(s("x"))}); !errors.Is(err, ErrUnknownRelation) {
		t.Fatalf("unknown relation: err = %v", err)
	}
	if _, err := d.Handle(&pglogrepl.CommitMessage{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("commit without begin: err = %v", err)
	}
	d2 := newPhotoDecoder(t)
	if _, err := d2.Handle(&pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"))}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short tuple: err = %v", err)
	}
}

func TestMalformedBytesAreErrorsNotPanics(t *testing.T) {
	inputs := map[string][]byte{
		"empty":             {},
		"begin too short":   {'B', 0, 0},
		"relation short":    {'R', 0, 0, 0, 1},
		"insert short":      {'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0, 0, 0, 9, 'a'},
		"update bad tuple":  {'U', 0, 0, 0, 1, 'X'},
		"delete no tuple":   {'D', 0, 0, 0, 1},
		"truncate huge n":   {'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1},
		"message short":     {'M', 1, 0, 0},
		"unknown type":      {'Z', 1, 2, 3},
		"stream start (v2)": {'S', 0, 0, 0, 1, 1},
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			d := New(nil)
			if _, err := d.Decode(in); err == nil {
				t.Fatalf("Decode(%x) = nil error", in)
			}
		})
	}
}

func TestArrayLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`{}`, nil},
		{`{a.jpg,b.jpg}`, []string{"a.jpg", "b.jpg"}},
		{`{"two words.jpg",NULL,"NULL",""}`, []string{"two words.jpg", "NULL"}},
		{`{"quote\"d.jpg","back\\slash.jpg"}`, []string{`quote"d.jpg`, `back\slash.jpg`}},
		{`{{a,b},{c,d}}`, []string{"a", "b", "c", "d"}},
		{`[0:1]={x,y}`, []string{"x", "y"}},
		{`{été/✓.jpg}`, []string{"été/✓.jpg"}},
	}
	for _, tt := range tests {
		got, err := parseArray(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseArray(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`{a`, `a}`, `{"a}`, `x`} {
		if _, err := parseArray(bad); err == nil {
			t.Errorf("parseArray(%q): want an error", bad)
		}
	}
}

// readStream loads a stream captured with pg_logical_slot_peek_binary_changes:
// one "lsn|xid|hex" line per pgoutput message.
func readStream(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "|")
		if len(parts) != 3 {
			t.Fatalf("%s: bad line %q", name, sc.Text())
		}
		b, err := hex.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestCapturedStream replays a real pgoutput stream (see testdata/README) of
// a quoted mixed-case table with text, TOASTed, array and jsonb columns.
func TestCapturedStream(t *testing.T) {
	d := New(tables([]Table{
		{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"ImageFile", "big", "tags"}, Storage: "media"},
		{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"doc"}, Storage: "docs", JSONPath: "files[*].path"},
	}))
	var got []string
	var truncated []string
	begins, commits := 0, 0
	for _, msg := range readStream(t, "testdata/mixed_case_stream.txt") {
		ev, err := d.Decode(msg)
		if err != nil {
			t.Fatalf("decode %x: %v", msg, err)
		}
		if len(ev.Warnings) > 0 {
			t.Fatalf("warnings: %q", ev.Warnings)
		}
		switch ev.Kind {
		case KindBegin:
			begins++
		case KindCommit:
			commits++
		case KindTruncate:
			truncated = append(truncated, ev.Tables...)
		}
		for _, c := range ev.Candidates {
			got = append(got, c.Storage+":"+c.Path+"@"+c.Source[strings.LastIndex(c.Source, ".")+1:])
		}
	}
	want := []string{
		"media:a/one.jpg@ImageFile",   // UPDATE of the file column (big is TOASTed and unchanged)
		"media:t/1.jpg@tags",          // array element removed
		"docs:j/1.pdf@doc",            // JSON leaf removed
		"media:a/été ✓.jpg@ImageFile", // DELETE
		"media:small@big",             // DELETE, the other text column
		"media:a/new.jpg@ImageFile",   // cleared to ''
	}
	if !slices.Equal(got, want) {
		t.Fatalf("candidates:\n got %q\nwant %q", got, want)
	}
	if begins != 9 || commits != 9 {
		t.Fatalf("begins %d, commits %d; want 9 each: ten transactions ran, the rolled-back one is not in the stream", begins, commits)
	}
	if !slices.Equal(truncated, []string{"Media Schema.PhotoTable"}) {
		t.Fatalf("truncated = %q", truncated)
	}
}

// TestTypesFromCatalog: a type the decoder does not know by OID (citext[],
// a domain's array) is never guessed at: decoding stops with an
// UnknownTypeError, changing nothing, and once the catalog's answer is
// added the same message decodes, as an array.
func TestTypesFromCatalog(t *testing.T) {
	const citextArrayOID = 90001
	rel := &pglogrepl.RelationMessage{RelationID: 1, Namespace: "public", RelationName: "doc", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "files", DataType: citextArrayOID}}}
	del := &pglogrepl.DeleteMessage{RelationID: 1, OldTupleType: 'O', OldTuple: tuple(s(`{a.pdf,"b c.pdf"}`))}
	d := New(tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"files"}, Storage: "media"}}))
	_, err := d.Handle(rel)
	var ute *UnknownTypeError
	if !errors.As(err, &ute) || ute.OID != citextArrayOID || ute.Column != "files" {
		t.Fatalf("relation with an unknown type: %v, want an UnknownTypeError for OID %d", err, citextArrayOID)
	}
	d.AddType(citextArrayOID, cdccleaner.ColumnType{Kind: cdccleaner.KindArray})
	mustHandle(t, d, rel)
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	if got, want := paths(mustHandle(t, d, del)), []string{"media:a.pdf", "media:b c.pdf"}; !slices.Equal(got, want) {
		t.Fatalf("candidates %q, want %q", got, want)
	}

	// Described up front (Types), the same.
	d = New(tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"files"}, Storage: "media"}}), Types(map[uint32]cdccleaner.ColumnType{citextArrayOID: {Kind: cdccleaner.KindArray}}))
	mustHandle(t, d, rel)
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	if got := paths(mustHandle(t, d, del)); len(got) != 2 {
		t.Fatalf("candidates %q, want 2", got)
	}

	// Described by the column as inspection found it, the same.
	cols := tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"files"}, Storage: "media"}})
	cols[0].TypeOID, cols[0].Type = citextArrayOID, cdccleaner.ColumnType{Kind: cdccleaner.KindArray}
	d = New(cols)
	mustHandle(t, d, rel)
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	if got := paths(mustHandle(t, d, del)); len(got) != 2 {
		t.Fatalf("candidates %q, want 2", got)
	}
}

// TestSchemaChanges: a Relation message re-sent after ALTER TABLE is read
// as the table now is. A retyped column is read by its new type (text[] to
// text and back); a watched column renamed or dropped, or retyped to
// something that cannot hold paths, is a SchemaError, and the relation as
// it was stays in use for nothing: decoding must stop there.
func TestSchemaChanges(t *testing.T) {
	rel := func(col string, typ uint32) *pglogrepl.RelationMessage {
		return &pglogrepl.RelationMessage{RelationID: 7, Namespace: "public", RelationName: "doc", ReplicaIdentity: 'f',
			Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "id", DataType: 23}, {Flags: 1, Name: col, DataType: typ}}}
	}
	del := func(v string) *pglogrepl.DeleteMessage {
		return &pglogrepl.DeleteMessage{RelationID: 7, OldTupleType: 'O', OldTuple: tuple(s("1"), s(v))}
	}
	d := New(tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"file"}, Storage: "media"}}))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	mustHandle(t, d, rel("file", 1009)) // text[]
	if got := paths(mustHandle(t, d, del(`{a.jpg,b.jpg}`))); !slices.Equal(got, []string{"media:a.jpg", "media:b.jpg"}) {
		t.Fatalf("text[]: %q", got)
	}
	mustHandle(t, d, rel("file", 25)) // ALTER ... TYPE text
	if got := paths(mustHandle(t, d, del(`c.jpg`))); !slices.Equal(got, []string{"media:c.jpg"}) {
		t.Fatalf("text after text[]: %q", got)
	}
	mustHandle(t, d, rel("file", 1009)) // and back
	if got := paths(mustHandle(t, d, del(`{d.jpg}`))); !slices.Equal(got, []string{"media:d.jpg"}) {
		t.Fatalf("text[] after text: %q", got)
	}
	// A type that cannot hold paths is looked up like any other unknown
	// type, then refused.
	if _, err := d.Handle(rel("file", 23)); !errors.As(err, new(*UnknownTypeError)) {
		t.Fatalf("integer column: %v, want an UnknownTypeError", err)
	}
	d.AddType(23, cdccleaner.ColumnType{Kind: cdccleaner.KindNone})
	for name, m := range map[string]*pglogrepl.RelationMessage{
		"renamed":     rel("picture", 25),
		"retyped int": rel("file", 23),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := d.Handle(m)
			var se *SchemaError
			if !errors.As(err, &se) || se.Column != "file" || se.Table != "public.doc" {
				t.Fatalf("%v, want a SchemaError for public.doc.file", err)
			}
		})
	}
	// The relation as it was is still the one in use.
	if got := paths(mustHandle(t, d, del(`{e.jpg}`))); !slices.Equal(got, []string{"media:e.jpg"}) {
		t.Fatalf("after refused redefinitions: %q", got)
	}
	// json_path on a column that is no longer json.
	d = New(tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"file"}, Storage: "media", JSONPath: "path"}}))
	mustHandle(t, d, rel("file", 3802))
	if _, err := d.Handle(rel("file", 25)); !errors.As(err, new(*SchemaError)) {
		t.Fatalf("json_path on a text column: %v, want a SchemaError", err)
	}
}

// TestPartitionWithoutFullIdentity: a partition without REPLICA IDENTITY
// FULL under a watched root published through it: pgoutput sends the
// root's Relation message, then the partition's (its identity DEFAULT),
// then the change under the root, its old tuple marked full ('O') with the
// columns outside the partition's key as NULL (as PostgreSQL 15 does). A
// NULL there names no candidate and is reported missed; once the
// partition's identity is FULL again, a NULL is no file.
func TestPartitionWithoutFullIdentity(t *testing.T) {
	cols := func(flags uint8) []*pglogrepl.RelationMessageColumn {
		return []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "id", DataType: 23}, {Flags: 1, Name: "at", DataType: 1082}, {Flags: flags, Name: "file", DataType: 25}}
	}
	root := &pglogrepl.RelationMessage{RelationID: 16396, Namespace: "public", RelationName: "upload", ReplicaIdentity: 'f', Columns: cols(1)}
	part := func(identity, flags uint8) *pglogrepl.RelationMessage {
		return &pglogrepl.RelationMessage{RelationID: 16412, Namespace: "public", RelationName: "upload_2026", ReplicaIdentity: identity, Columns: cols(flags)}
	}
	del := &pglogrepl.DeleteMessage{RelationID: 16396, OldTupleType: 'O', OldTuple: tuple(s("1"), s("2026-03-01"), null)}
	d := New(tables([]Table{{Schema: "public", Name: "upload", Columns: []string{"file"}, Storage: "media", Partitioned: true}}))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	mustHandle(t, d, root)
	mustHandle(t, d, part('d', 0))
	if ev := mustHandle(t, d, del); len(ev.Candidates) != 0 || len(ev.Missed) != 1 || !strings.Contains(ev.Missed[0].Reason, "partition") {
		t.Fatalf("delete from a partition without FULL: candidates %q, missed %+v; want one missed", paths(ev), ev.Missed)
	}
	mustHandle(t, d, root)
	mustHandle(t, d, part('f', 1))
	if ev := mustHandle(t, d, del); len(ev.Candidates) != 0 || len(ev.Missed) != 0 {
		t.Fatalf("delete of a NULL from a FULL partition: candidates %q, missed %+v; want neither", paths(ev), ev.Missed)
	}

	// A partition with a column generated there (not sent): its Relation
	// message has fewer columns than the table's, and is still one.
	d = New(tables([]Table{{Schema: "public", Name: "upload", Columns: []string{"file"}, Storage: "media", Partitioned: true}}))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	mustHandle(t, d, root)
	mustHandle(t, d, &pglogrepl.RelationMessage{RelationID: 16412, Namespace: "public", RelationName: "upload_gen", ReplicaIdentity: 'd',
		Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "id", DataType: 23}, {Flags: 0, Name: "file", DataType: 25}}})
	if ev := mustHandle(t, d, del); len(ev.Missed) != 1 {
		t.Fatalf("delete from a partition with a generated column: missed %+v, want one", ev.Missed)
	}

	// A table that is not partitioned, followed by a look-alike table
	// (a publication with more tables): no partition, a NULL is no file.
	d = New(tables([]Table{{Schema: "public", Name: "upload", Columns: []string{"file"}, Storage: "media"}}))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	mustHandle(t, d, root)
	mustHandle(t, d, part('d', 0))
	if ev := mustHandle(t, d, del); len(ev.Missed) != 0 {
		t.Fatalf("look-alike table taken for a partition: missed %+v", ev.Missed)
	}
}

// TestCharacterPadding: character(n) values arrive padded with spaces,
// which PostgreSQL ignores when it compares them: they are not part of a
// path, in a value or in an array's elements.
func TestCharacterPadding(t *testing.T) {
	rel := &pglogrepl.RelationMessage{RelationID: 3, Namespace: "public", RelationName: "doc", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "file", DataType: 1042}, {Flags: 1, Name: "files", DataType: 1014}}}
	d := New(tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"file", "files"}, Storage: "media"}}))
	mustHandle(t, d, rel)
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	ev := mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 3, OldTupleType: 'O',
		OldTuple: tuple(s("a b.jpg             "), s(`{"c.jpg     ","d e.jpg   ","          "}`))})
	if got, want := paths(ev), []string{"media:a b.jpg", "media:c.jpg", "media:d e.jpg"}; !slices.Equal(got, want) {
		t.Fatalf("candidates %q, want %q", got, want)
	}
	// Padding alone is no change: the same path, padded differently.
	ev = mustHandle(t, d, &pglogrepl.UpdateMessage{RelationID: 3, OldTupleType: 'O',
		OldTuple: tuple(s("x.jpg     "), null), NewTuple: tuple(s("x.jpg"), null)})
	if len(ev.Candidates) != 0 {
		t.Fatalf("candidates %q for a change of padding only", paths(ev))
	}
}

// TestMissingOldValues: a change that does not carry the old value of a
// watched column names no candidate for it and says so (Missed): a
// key-only old tuple ('K', replica identity DEFAULT, or a partition
// without REPLICA IDENTITY FULL under a FULL root) sends other columns as
// NULL; an UPDATE without an old tuple may have changed a column outside
// the key. A key column's value, and an UPDATE that leaves the key alone
// when every watched column is in it, are known.
func TestMissingOldValues(t *testing.T) {
	rel := func(identity uint8, imageFlags uint8) *pglogrepl.RelationMessage {
		return &pglogrepl.RelationMessage{RelationID: 5, Namespace: "public", RelationName: "gallery_photo", ReplicaIdentity: identity,
			Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "id", DataType: 23}, {Flags: imageFlags, Name: "image", DataType: 1043}}}
	}
	tests := []struct {
		name   string
		rel    *pglogrepl.RelationMessage
		change pglogrepl.Message
		cands  []string
		missed string // Op of the one Missed, "" for none
		reason string
	}{
		{"DELETE, identity DEFAULT", rel('d', 0),
			&pglogrepl.DeleteMessage{RelationID: 5, OldTupleType: 'K', OldTuple: tuple(s("1"), null)}, nil, "delete", "replica identity is DEFAULT"},
		{"UPDATE without old tuple, identity DEFAULT", rel('d', 0),
			&pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple(s("1"), s("b.jpg"))}, nil, "update", "replica identity is DEFAULT"},
		{"UPDATE in a partition without FULL", rel('f', 1),
			&pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple(s("1"), s("b.jpg"))}, nil, "update", "partition without REPLICA IDENTITY FULL"},
		{"key column in a key-only tuple", rel('i', 1),
			&pglogrepl.DeleteMessage{RelationID: 5, OldTupleType: 'K', OldTuple: tuple(s("1"), s("a.jpg"))}, []string{"media:a.jpg"}, "", ""},
		{"UPDATE leaving a key column alone", rel('i', 1),
			&pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple(s("1"), s("a.jpg"))}, nil, "", ""},
		{"FULL", rel('f', 1),
			&pglogrepl.DeleteMessage{RelationID: 5, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"))}, []string{"media:a.jpg"}, "", ""},
		{"FULL, NULL is no file", rel('f', 1),
			&pglogrepl.DeleteMessage{RelationID: 5, OldTupleType: 'O', OldTuple: tuple(s("1"), null)}, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(tables([]Table{{Schema: "public", Name: "gallery_photo", Columns: []string{"image"}, Storage: "media"}}))
			mustHandle(t, d, tt.rel)
			mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
			ev := mustHandle(t, d, tt.change)
			if got := paths(ev); !slices.Equal(got, tt.cands) {
				t.Errorf("candidates %q, want %q", got, tt.cands)
			}
			switch {
			case tt.missed == "" && len(ev.Missed) != 0:
				t.Errorf("missed %+v, want none", ev.Missed)
			case tt.missed != "" && (len(ev.Missed) != 1 || ev.Missed[0].Op != tt.missed || ev.Missed[0].Source != "public.gallery_photo.image" ||
				ev.Missed[0].Storage != "media" || !strings.Contains(ev.Missed[0].Reason, tt.reason)):
				t.Errorf("missed %+v, want one %s of public.gallery_photo.image in media, because %q", ev.Missed, tt.missed, tt.reason)
			}
		})
	}
}

func TestLogicalMessages(t *testing.T) {
	msg := func(transactional bool, prefix, content string) *pglogrepl.LogicalDecodingMessage {
		return &pglogrepl.LogicalDecodingMessage{Transactional: transactional, Prefix: prefix, Content: []byte(content)}
	}
	tests := []struct {
		name string
		msg  *pglogrepl.LogicalDecodingMessage
		want []string // candidates
		bad  string   // substring of the failure detail
	}{
		{"request", msg(true, "cdc_cleaner", `{"storage":"media","path":"a/b.jpg"}`), []string{"media:a/b.jpg"}, ""},
		{"fields in any order", msg(true, "cdc_cleaner", `{"path":"x y.jpg","storage":"media"}`), []string{"media:x y.jpg"}, ""},
		{"other prefix", msg(true, "app_audit", `{"storage":"media","path":"a/b.jpg"}`), nil, ""},
		{"not transactional", msg(false, "cdc_cleaner", `{"storage":"media","path":"a/b.jpg"}`), nil, ""},
		{"not JSON", msg(true, "cdc_cleaner", `delete a/b.jpg`), nil, "parse message content"},
		{"unknown storage", msg(true, "cdc_cleaner", `{"storage":"medai","path":"a/b.jpg"}`), nil, `storage "medai"`},
		{"missing path", msg(true, "cdc_cleaner", `{"storage":"media"}`), nil, `must be {"storage"`},
		{"empty path", msg(true, "cdc_cleaner", `{"storage":"media","path":""}`), nil, "empty path"},
		{"extra field", msg(true, "cdc_cleaner", `{"storage":"media","path":"a","paths":["b"]}`), nil, "unknown field"},
		{"two objects", msg(true, "cdc_cleaner", `{"storage":"media","path":"a"}{"storage":"media","path":"b"}`), nil, "trailing data"},
		{"path not a string", msg(true, "cdc_cleaner", `{"storage":"media","path":["a"]}`), nil, "parse message content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(nil, Messages(map[string]bool{"media": true, "docs": true, "off": false}))
			mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 0x2000, Xid: 9})
			ev := mustHandle(t, d, tt.msg)
			if got := paths(ev); !slices.Equal(got, tt.want) {
				t.Fatalf("candidates %q, want %q", got, tt.want)
			}
			for _, c := range ev.Candidates {
				if c.Source != "message" || c.Txn != 1 || c.Xid != 9 || c.CommitLSN != 0x2000 {
					t.Fatalf("candidate %+v", c)
				}
			}
			if tt.bad == "" {
				if len(ev.Bad) != 0 {
					t.Fatalf("unexpected failures %+v", ev.Bad)
				}
				return
			}
			if len(ev.Bad) != 1 || ev.Bad[0].Reason != ReasonBadMessage || !strings.Contains(ev.Bad[0].Detail, tt.bad) || ev.Bad[0].Txn != 1 {
				t.Fatalf("failures %+v, want one bad_message mentioning %q", ev.Bad, tt.bad)
			}
		})
	}
	// A request naming a storage that does not honour messages is
	// ignored, and said so; when none does, every request is, a malformed
	// one too.
	for _, tt := range []struct {
		name     string
		storages map[string]bool
		content  string
		storage  string // IgnoredStorage
	}{
		{"storage without messages", map[string]bool{"media": true, "off": false}, `{"storage":"off","path":"a.jpg"}`, "off"},
		{"no storage honours messages", map[string]bool{"media": false}, `{"storage":"media","path":"a.jpg"}`, "media"},
		{"none honours, unknown storage", map[string]bool{"media": false}, `{"storage":"other","path":"a.jpg"}`, ""},
		{"none honours, malformed", map[string]bool{"media": false}, `delete a.jpg`, ""},
	} {
		t.Run("ignored: "+tt.name, func(t *testing.T) {
			d := New(nil, Messages(tt.storages))
			mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
			ev := mustHandle(t, d, msg(true, "cdc_cleaner", tt.content))
			if ev.Kind != KindMessage || len(ev.Candidates)+len(ev.Bad) != 0 || ev.Ignored == "" || ev.IgnoredStorage != tt.storage {
				t.Fatalf("event %+v, want an ignored message naming storage %q", ev, tt.storage)
			}
		})
	}
	// A malformed request's storage is kept only when it is configured
	// (it is a metric label, and anyone may emit a message).
	d := New(nil, Messages(map[string]bool{"media": true}))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	if ev := mustHandle(t, d, msg(true, "cdc_cleaner", `{"storage":"x\u00e9","path":"a"}`)); len(ev.Bad) != 1 || ev.Bad[0].Storage != "" {
		t.Fatalf("request naming an unknown storage: %+v, want one failure without a storage", ev)
	}
	// Without the Messages option, requests are not decoded at all.
	d = New(nil)
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	if ev := mustHandle(t, d, msg(true, "cdc_cleaner", `{"storage":"media","path":"a"}`)); len(ev.Candidates)+len(ev.Bad) != 0 {
		t.Fatalf("message decoded without the Messages option: %+v", ev)
	}
}

// TestCapturedMessage: the captured stream's pg_logical_emit_message is a
// candidate of its own transaction.
func TestCapturedMessage(t *testing.T) {
	d := New(tables([]Table{{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"ImageFile"}, Storage: "media"}}), Messages(map[string]bool{"media": true}))
	var got []string
	for _, m := range readStream(t, "testdata/mixed_case_stream.txt") {
		ev, err := d.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == KindMessage {
			for _, c := range ev.Candidates {
				got = append(got, fmt.Sprintf("%s:%s@txn%d", c.Storage, c.Path, c.Txn))
			}
		}
	}
	if want := []string{"media:m/1.jpg@txn6"}; !slices.Equal(got, want) {
		t.Fatalf("message candidates %q, want %q", got, want)
	}
}

// Table is a watch entry as the configuration gives it.
type Table struct {
	Schema, Name string
	Columns      []string
	Storage      string
	JSONPath     string
	Partitioned  bool
}

// tables returns the columns of ts, as config.Config.Columns and
// inspection would.
func tables(ts []Table) []cdccleaner.Column {
	var out []cdccleaner.Column
	for _, t := range ts {
		var jp cdccleaner.JSONPath
		if t.JSONPath != "" {
			var err error
			if jp, err = cdccleaner.ParseJSONPath(t.JSONPath); err != nil {
				panic(err)
			}
		}
		for _, c := range t.Columns {
			out = append(out, cdccleaner.Column{Storage: t.Storage, Schema: t.Schema, Table: t.Name, Name: c, JSONPath: jp, Partitioned: t.Partitioned})
		}
	}
	return out
}

// TestProtectColumnsNotWatched: New is given every configured column; a
// protect column's vanished paths are never candidates.
func TestProtectColumnsNotWatched(t *testing.T) {
	cols := tables([]Table{{Schema: "public", Name: "gallery_photo", Columns: []string{"image"}, Storage: "media"}})
	cols[0].Protect = true
	d := New(cols)
	mustHandle(t, d, photoRelation(1))
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
	ev := mustHandle(t, d, &pglogrepl.DeleteMessage{RelationID: 1, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))})
	if got := paths(ev); len(got) != 0 {
		t.Fatalf("protect column gave candidates %q", got)
	}
}

// BenchmarkDecode decodes the captured stream of TestCapturedStream (a
// session's Relation messages, inserts, updates, deletes and a truncate of
// a table with text, TOASTed, array and jsonb columns), per message.
func BenchmarkDecode(b *testing.B) {
	msgs := readStream(b, "testdata/mixed_case_stream.txt")
	cols := tables([]Table{
		{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"ImageFile", "big", "tags"}, Storage: "media"},
		{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"doc"}, Storage: "docs", JSONPath: "files[*].path"},
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		d := New(cols)
		for _, m := range msgs {
			if _, err := d.Decode(m); err != nil {
				b.Fatal(err)
			}
			if i++; i == b.N {
				break
			}
		}
	}
}

func refPaths(ev Event) []string {
	var out []string
	for _, c := range ev.References {
		out = append(out, c.Storage+":"+c.Path)
	}
	slices.Sort(out)
	return out
}

// TestNewReferences: the paths a change references anew are what promise 7
// compares with the journal; a path a row already held is not new.
func TestNewReferences(t *testing.T) {
	tests := []struct {
		name string
		msg  pglogrepl.Message
		want []string
	}{
		{"insert references every path",
			&pglogrepl.InsertMessage{RelationID: 16400, Tuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))}, []string{"media:a.jpg", "media:b.jpg"}},
		{"insert with NULL and empty references nothing",
			&pglogrepl.InsertMessage{RelationID: 16400, Tuple: tuple(s("1"), s(""), null, s("t"))}, nil},
		{"update: only the new path of the changed column",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("c.jpg"), s("b.jpg"), s("t"))}, []string{"media:c.jpg"}},
		{"stale save writes an old path back",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("new.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("old.jpg"), s("b.jpg"), s("t"))}, []string{"media:old.jpg"}},
		{"update of another column references nothing new",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("new title"))}, nil},
		{"unchanged TOASTed value references nothing new",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s(toast), s(toast), s("t2"))}, nil},
		{"old value not sent: every new path is compared",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s(toast), null, s("t")),
				NewTuple: tuple(s("1"), s("z.jpg"), null, s("t"))}, []string{"media:z.jpg"}},
		{"set from empty and NULL",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s(""), null, s("t")),
				NewTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))}, []string{"media:a.jpg", "media:b.jpg"}},
		{"swap between columns is new per column",
			&pglogrepl.UpdateMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t")),
				NewTuple: tuple(s("1"), s("b.jpg"), s("a.jpg"), s("t"))}, []string{"media:a.jpg", "media:b.jpg"}},
		{"delete references nothing",
			&pglogrepl.DeleteMessage{RelationID: 16400, OldTupleType: 'O', OldTuple: tuple(s("1"), s("a.jpg"), s("b.jpg"), s("t"))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPhotoDecoder(t)
			ev := mustHandle(t, d, tt.msg)
			if got := refPaths(ev); !slices.Equal(got, tt.want) {
				t.Fatalf("references = %q, want %q", got, tt.want)
			}
			for _, c := range ev.References {
				if c.Txn != 1 || c.Xid != 7 || c.CommitLSN != 0x1000 || !strings.HasPrefix(c.Source, "public.gallery_photo.") {
					t.Fatalf("reference %+v: want txn 1, xid 7, commit LSN 0/1000 and a source column", c)
				}
			}
		})
	}
}

// TestNewReferencesOfArraysAndJSON: every element of an array and every
// string leaf at json_path that a row did not hold before is new.
func TestNewReferencesOfArraysAndJSON(t *testing.T) {
	cols := []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "doc", Name: "files"},
		{Storage: "media", Schema: "public", Table: "doc", Name: "meta", JSONPath: mustJSONPath(t, "files[*].path")},
	}
	d := New(cols)
	mustHandle(t, d, &pglogrepl.RelationMessage{RelationID: 9, Namespace: "public", RelationName: "doc", ReplicaIdentity: 'f',
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "id", DataType: 23}, {Name: "files", DataType: 1009}, {Name: "meta", DataType: 3802}}})
	mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 0x2000, Xid: 8})
	ev := mustHandle(t, d, &pglogrepl.UpdateMessage{RelationID: 9, OldTupleType: 'O',
		OldTuple: tuple(s("1"), s(`{a.jpg,b.jpg}`), s(`{"files":[{"path":"j1.pdf"}]}`)),
		NewTuple: tuple(s("1"), s(`{b.jpg,c.jpg}`), s(`{"files":[{"path":"j1.pdf"},{"path":"j2.pdf"}]}`))})
	if got, want := refPaths(ev), []string{"media:c.jpg", "media:j2.pdf"}; !slices.Equal(got, want) {
		t.Fatalf("references = %q, want %q", got, want)
	}
	if got, want := paths(ev), []string{"media:a.jpg"}; !slices.Equal(got, want) {
		t.Fatalf("candidates = %q, want %q", got, want)
	}
}

func mustJSONPath(t *testing.T, s string) cdccleaner.JSONPath {
	t.Helper()
	jp, err := cdccleaner.ParseJSONPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return jp
}
