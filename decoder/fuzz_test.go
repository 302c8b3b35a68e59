package decoder

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// fuzzRelID is the OID of the captured stream's relation, "Media
// Schema"."PhotoTable": id int, "ImageFile" text, big text, tags text[],
// doc jsonb.
const fuzzRelID = 16417

// fuzzColumns are the watched columns of that relation: their position and
// storage, by candidate source.
var fuzzColumns = map[string]struct {
	index   int
	storage string
}{
	"Media Schema.PhotoTable.ImageFile": {1, "media"},
	"Media Schema.PhotoTable.big":       {2, "media"},
	"Media Schema.PhotoTable.tags":      {3, "media"},
	"Media Schema.PhotoTable.doc":       {4, "docs"},
}

// FuzzDecode feeds arbitrary bytes to a decoder that has seen the captured
// stream's Begin and Relation, and checks that:
//
//   - no input panics;
//   - an input that Decode does not reject as malformed is exactly one
//     well-formed pgoutput message: the message parsed from it, encoded
//     again, gives back the input byte for byte (no trailing bytes, no
//     field read past its end, no flag or kind byte silently mapped to
//     something else);
//   - an accepted event matches the message: its kind, and candidates only
//     from an update or delete of the watched relation (each the old value
//     of a watched column, in that column's storage, in the open
//     transaction) or from a transactional cdc_cleaner message whose content
//     is exactly {"storage": ..., "path": ...} (anything else is one
//     bad_message failure, never a guessed candidate);
//   - the decoder stays usable: the captured delete decodes afterwards, to
//     its exact candidates unless the input redefined the relation.
//
// The seeds, every distinct message of the captured stream plus truncated
// and corrupted variants, are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	stream := readStream(f, "testdata/mixed_case_stream.txt")
	for _, msg := range stream {
		f.Add(msg)
	}
	begin, relation, del := stream[0], stream[1], firstOfType(f, stream, 'D')
	f.Fuzz(func(t *testing.T, data []byte) {
		d := New(tables([]Table{
			{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"ImageFile", "big", "tags"}, Storage: "media"},
			{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"doc"}, Storage: "docs", JSONPath: "files[*].path"},
		}), Messages(map[string]bool{"media": true, "docs": true}))
		for _, msg := range [][]byte{begin, relation} {
			if _, err := d.Decode(msg); err != nil {
				t.Fatal(err)
			}
		}
		input := bytes.Clone(data) // the decoder must not write to its input

		ev, err := d.Decode(data)
		if !bytes.Equal(data, input) {
			t.Fatalf("Decode modified its input")
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownRelation) && !errors.Is(err, ErrNoTransaction) &&
			!errors.As(err, new(*SchemaError)) && !errors.As(err, new(*UnknownTypeError)) {
			t.Fatalf("Decode(%x) = %v, not one of the documented errors", data, err)
		}
		// parse is Decode's wire-format step: what it accepts must be
		// exactly one message.
		msg, perr := parse(data)
		if perr != nil {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse(%x) = %v but Decode = %+v, %v", data, perr, ev, err)
			}
		} else {
			if enc := encodeMessage(t, msg, data); !bytes.Equal(enc, data) {
				t.Fatalf("accepted %T\n  input %x\nencodes %x\nthe input is not exactly the message that was decoded from it", msg, data, enc)
			}
			if err == nil {
				checkEvent(t, d, msg, ev)
			}
		}

		// The decoder is still usable, and its relation cache holds only
		// what Relation messages said.
		redefined := false
		// A Relation message refused (SchemaError, UnknownTypeError)
		// changes nothing: the captured delete decodes as before.
		if r, ok := msg.(*pglogrepl.RelationMessage); ok && perr == nil && err == nil && r.RelationID == fuzzRelID {
			redefined = true
		}
		if !d.inTxn {
			if _, err := d.Decode(begin); err != nil {
				t.Fatalf("begin after the input: %v", err)
			}
		}
		ev, err = d.Decode(del)
		if redefined {
			if err == nil {
				for _, c := range ev.Candidates {
					if c.Path == "" || (c.Storage != "media" && c.Storage != "docs") {
						t.Fatalf("delete after a redefined relation: candidate %+v", c)
					}
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("the captured delete after the input: %v", err)
		}
		if got := paths(ev); strings.Join(got, "|") != "media:a/été ✓.jpg|media:small" {
			t.Fatalf("the captured delete after the input: candidates %q", got)
		}
	})
}

// checkEvent checks the event Decode returned for the well-formed message
// msg.
func checkEvent(t *testing.T, d *Decoder, msg pglogrepl.Message, ev Event) {
	t.Helper()
	if len(ev.Bad) > 0 && ev.Kind != KindMessage {
		t.Fatalf("%T: failures %+v outside a message event", msg, ev.Bad)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		t.Fatalf("a Begin inside the open transaction was accepted: %+v", ev)
	case *pglogrepl.CommitMessage:
		if ev.Kind != KindCommit || uint64(ev.CommitLSN) != uint64(m.CommitLSN) || uint64(ev.EndLSN) != uint64(m.TransactionEndLSN) || d.inTxn {
			t.Fatalf("commit %+v decoded as %+v", m, ev)
		}
	case *pglogrepl.InsertMessage:
		if ev.Kind != KindChange || ev.Op != "insert" || len(ev.Candidates) != 0 {
			t.Fatalf("insert decoded as %+v: an insert only adds references", ev)
		}
	case *pglogrepl.UpdateMessage:
		checkChange(t, d, "update", m.RelationID, m.OldTuple, m.NewTuple, ev)
	case *pglogrepl.DeleteMessage:
		checkChange(t, d, "delete", m.RelationID, m.OldTuple, nil, ev)
	case *pglogrepl.TruncateMessage:
		want := 0
		for _, id := range m.RelationIDs {
			if id == fuzzRelID {
				want++
			}
		}
		if len(ev.Candidates) != 0 || len(ev.Tables) != want || (want > 0) != (ev.Kind == KindTruncate) {
			t.Fatalf("truncate of %v decoded as %+v", m.RelationIDs, ev)
		}
	case *pglogrepl.LogicalDecodingMessage:
		checkMessage(t, d, m, ev)
	default: // Relation, Type, Origin
		if ev.Kind != KindOther || len(ev.Candidates) != 0 || len(ev.Bad) != 0 {
			t.Fatalf("%T decoded as %+v", msg, ev)
		}
	}
}

// checkChange checks the candidates of an update or delete: each is the old
// value (or, for an array or JSON column, one of its elements or string
// leaves) of a watched column of the captured relation, gone from the new
// value.
func checkChange(t *testing.T, d *Decoder, op string, relID uint32, oldTup, newTup *pglogrepl.TupleData, ev Event) {
	t.Helper()
	if ev.Kind != KindChange || ev.Op != op {
		t.Fatalf("%s decoded as %+v", op, ev)
	}
	if relID != fuzzRelID {
		if len(ev.Candidates) != 0 {
			t.Fatalf("%s of unwatched relation %d has candidates %+v", op, relID, ev.Candidates)
		}
		return
	}
	if len(ev.Candidates) > 0 && oldTup == nil {
		t.Fatalf("%s without an old tuple has candidates %+v", op, ev.Candidates)
	}
	for _, c := range ev.Candidates {
		col, ok := fuzzColumns[c.Source]
		if !ok || c.Storage != col.storage || c.Path == "" || c.Txn != d.Txn() || c.Xid != d.xid || c.CommitLSN != d.finalLSN {
			t.Fatalf("%s: candidate %+v", op, c)
		}
		old := oldTup.Columns[col.index]
		if old.DataType != 't' && old.DataType != 'b' {
			t.Fatalf("%s: candidate %+v from an old value of kind %q", op, c, old.DataType)
		}
		var newVal *pglogrepl.TupleDataColumn
		if newTup != nil {
			newVal = newTup.Columns[col.index]
		}
		switch col.index {
		case 1, 2: // text: the whole value, changed
			if c.Path != string(old.Data) || newVal != nil && newVal.DataType != 'n' && string(newVal.Data) == c.Path {
				t.Fatalf("%s: candidate %q from old %q, new %+v", op, c.Path, old.Data, newVal)
			}
		case 3: // text[]: an element, found in the literal once escapes are gone
			if !strings.Contains(strings.ReplaceAll(string(old.Data), `\`, ""), strings.ReplaceAll(c.Path, `\`, "")) {
				t.Fatalf("%s: candidate %q is not an element of %q", op, c.Path, old.Data)
			}
		case 4: // jsonb: a string leaf of the document (whose numbers may not fit a float64)
			var v any
			dec := json.NewDecoder(bytes.NewReader(old.Data))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil || !hasStringLeaf(v, c.Path) {
				t.Fatalf("%s: candidate %q is not a string in %q", op, c.Path, old.Data)
			}
		}
	}
}

func hasStringLeaf(v any, s string) bool {
	switch v := v.(type) {
	case string:
		return v == s
	case []any:
		for _, e := range v {
			if hasStringLeaf(e, s) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if hasStringLeaf(e, s) {
				return true
			}
		}
	}
	return false
}

// checkMessage checks a logical decoding message against a strict reading
// of its content, written independently of the decoder's.
func checkMessage(t *testing.T, d *Decoder, m *pglogrepl.LogicalDecodingMessage, ev Event) {
	t.Helper()
	if !m.Transactional || m.Prefix != MessagePrefix {
		if ev.Kind != KindOther || len(ev.Candidates)+len(ev.Bad) != 0 {
			t.Fatalf("ignored message %+v decoded as %+v", m, ev)
		}
		return
	}
	if ev.Kind != KindMessage || len(ev.Candidates)+len(ev.Bad) != 1 {
		t.Fatalf("message %q decoded as %+v, want one candidate or one failure", m.Content, ev)
	}
	storage, path, ok := strictRequest(m.Content)
	ok = ok && (storage == "media" || storage == "docs") && path != ""
	if !ok {
		if len(ev.Bad) != 1 || ev.Bad[0].Reason != ReasonBadMessage || ev.Bad[0].Detail == "" || ev.Bad[0].Txn != d.Txn() {
			t.Fatalf("message %q is not a valid request but decoded as %+v", m.Content, ev)
		}
		return
	}
	if len(ev.Candidates) != 1 {
		t.Fatalf("message %q: want candidate %s:%s, got %+v", m.Content, storage, path, ev)
	}
	c := ev.Candidates[0]
	if c.Storage != storage || c.Path != path || c.Source != "message" || c.Txn != d.Txn() || c.Xid != d.xid || c.CommitLSN != d.finalLSN {
		t.Fatalf("message %q: candidate %+v, want %s:%s", m.Content, c, storage, path)
	}
}

// strictRequest reads content as the JSON object {"storage": s, "path": p}:
// both keys exactly so spelled, each once, both strings, nothing else, and
// nothing after the object. Content that is not valid UTF-8, or strings
// holding U+FFFD (which is what encoding/json makes of invalid UTF-8 and of
// lone surrogate escapes), are refused: the strings must be what was sent.
func strictRequest(content []byte) (storage, path string, ok bool) {
	if !utf8.Valid(content) {
		return "", "", false
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", "", false
	}
	got := map[string]string{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", "", false
		}
		k, _ := key.(string)
		if _, dup := got[k]; dup || (k != "storage" && k != "path") {
			return "", "", false
		}
		val, err := dec.Token()
		v, isString := val.(string)
		if err != nil || !isString || strings.ContainsRune(v, utf8.RuneError) {
			return "", "", false
		}
		got[k] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", "", false
	}
	storage, okS := got["storage"]
	path, okP := got["path"]
	return storage, path, okS && okP
}

// encodeMessage writes m in pgoutput's wire format (protocol version 1), as
// PostgreSQL's proto.c does, independently of the decoder. Timestamps are
// copied from orig: their conversion to time.Time does not round-trip for
// every 64-bit value, and nothing here reads them.
func encodeMessage(t *testing.T, m pglogrepl.Message, orig []byte) []byte {
	t.Helper()
	var b []byte
	u8 := func(v uint8) { b = append(b, v) }
	u16 := func(v uint16) { b = binary.BigEndian.AppendUint16(b, v) }
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	str := func(s string) { b = append(append(b, s...), 0) }
	timeAt := func(off int) {
		if off+8 > len(orig) {
			t.Fatalf("%T accepted from %d bytes", m, len(orig))
		}
		b = append(b, orig[off:off+8]...)
	}
	tuple := func(td *pglogrepl.TupleData) {
		if int(td.ColumnNum) != len(td.Columns) {
			t.Fatalf("tuple says %d columns, has %d", td.ColumnNum, len(td.Columns))
		}
		u16(td.ColumnNum)
		for _, c := range td.Columns {
			u8(c.DataType)
			switch c.DataType {
			case 't', 'b':
				if int(c.Length) != len(c.Data) {
					t.Fatalf("column says %d bytes, has %d", c.Length, len(c.Data))
				}
				u32(c.Length)
				b = append(b, c.Data...)
			case 'n', 'u':
			default: // not a kind pgoutput sends
				t.Fatalf("tuple column of unknown kind %q accepted", c.DataType)
			}
		}
	}
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		u8('B')
		u64(uint64(m.FinalLSN))
		timeAt(9)
		u32(m.Xid)
	case *pglogrepl.CommitMessage:
		u8('C')
		u8(m.Flags)
		u64(uint64(m.CommitLSN))
		u64(uint64(m.TransactionEndLSN))
		timeAt(18)
	case *pglogrepl.OriginMessage:
		u8('O')
		u64(uint64(m.CommitLSN))
		str(m.Name)
	case *pglogrepl.RelationMessage:
		u8('R')
		u32(m.RelationID)
		str(m.Namespace)
		str(m.RelationName)
		u8(m.ReplicaIdentity)
		if int(m.ColumnNum) != len(m.Columns) {
			t.Fatalf("relation says %d columns, has %d", m.ColumnNum, len(m.Columns))
		}
		u16(m.ColumnNum)
		for _, c := range m.Columns {
			u8(c.Flags)
			str(c.Name)
			u32(c.DataType)
			u32(uint32(c.TypeModifier))
		}
	case *pglogrepl.TypeMessage:
		u8('Y')
		u32(m.DataType)
		str(m.Namespace)
		str(m.Name)
	case *pglogrepl.InsertMessage:
		u8('I')
		u32(m.RelationID)
		u8('N')
		tuple(m.Tuple)
	case *pglogrepl.UpdateMessage:
		u8('U')
		u32(m.RelationID)
		if m.OldTuple != nil {
			u8(m.OldTupleType)
			tuple(m.OldTuple)
		}
		u8('N')
		tuple(m.NewTuple)
	case *pglogrepl.DeleteMessage:
		u8('D')
		u32(m.RelationID)
		u8(m.OldTupleType)
		tuple(m.OldTuple)
	case *pglogrepl.TruncateMessage:
		u8('T')
		if int(m.RelationNum) != len(m.RelationIDs) {
			t.Fatalf("truncate says %d relations, has %d", m.RelationNum, len(m.RelationIDs))
		}
		u32(m.RelationNum)
		u8(m.Option)
		for _, id := range m.RelationIDs {
			u32(id)
		}
	case *pglogrepl.LogicalDecodingMessage:
		u8('M')
		if m.Transactional {
			u8(1)
		} else {
			u8(0)
		}
		u64(uint64(m.LSN))
		str(m.Prefix)
		u32(uint32(len(m.Content)))
		b = append(b, m.Content...)
	default:
		t.Fatalf("accepted a message of type %T", m)
	}
	return b
}

func firstOfType(tb testing.TB, stream [][]byte, typ byte) []byte {
	tb.Helper()
	for _, m := range stream {
		if m[0] == typ {
			return m
		}
	}
	tb.Fatalf("no %q message in the captured stream", typ)
	return nil
}

// retypeTypes are the types FuzzRetype gives the watched column, with what
// the catalog would answer for those the decoder does not know by OID.
var retypeTypes = []struct {
	oid     uint32
	catalog *cdccleaner.ColumnType // nil: known by OID
}{
	{25, nil}, {1043, nil}, {1042, nil}, {1009, nil}, {1014, nil}, {3802, nil}, {114, nil},
	{23, &cdccleaner.ColumnType{Kind: cdccleaner.KindNone}},                  // integer
	{90001, &cdccleaner.ColumnType{Kind: cdccleaner.KindText, Padded: true}}, // a domain over character(n)
	{90002, &cdccleaner.ColumnType{Kind: cdccleaner.KindArray}},              // citext[]
}

// FuzzRetype: a watched column changes type between two Relation messages
// (ALTER TABLE ... TYPE while the cleaner runs), with character(n) padding
// and key-only old tuples among the inputs. Decoding never panics and
// fails only with a documented error; a refused Relation message changes
// nothing; a candidate is never empty, never keeps character(n) padding,
// and for a text column is the old value itself, gone from the new one; a
// key-only old tuple with a NULL names no candidate and says so.
func FuzzRetype(f *testing.F) {
	f.Add(uint8(0), uint8(3), "a.jpg", "b.jpg", false)
	f.Add(uint8(2), uint8(4), "a.jpg     ", `{"a.jpg  ","b.jpg  "}`, false)
	f.Add(uint8(3), uint8(0), `{a.jpg,"b c.jpg"}`, "a.jpg", true)
	f.Add(uint8(5), uint8(7), `{"path":"a.jpg","n":1e400}`, "x", false)
	f.Add(uint8(8), uint8(9), "d.jpg   ", `{d.jpg}`, false)
	f.Fuzz(func(t *testing.T, ta, tb uint8, oldVal, newVal string, keyOnly bool) {
		d := New(tables([]Table{{Schema: "public", Name: "doc", Columns: []string{"file"}, Storage: "media"}}))
		var cur *cdccleaner.ColumnType // the column's type as the decoder reads it now
		relation := func(i uint8) {
			rt := retypeTypes[int(i)%len(retypeTypes)]
			rel := &pglogrepl.RelationMessage{RelationID: 1, Namespace: "public", RelationName: "doc", ReplicaIdentity: 'f',
				Columns: []*pglogrepl.RelationMessageColumn{{Flags: 1, Name: "id", DataType: 23}, {Flags: 1, Name: "file", DataType: rt.oid}}}
			_, err := d.Handle(rel)
			var ute *UnknownTypeError
			if errors.As(err, &ute) {
				if rt.catalog == nil || ute.OID != rt.oid {
					t.Fatalf("type OID %d: %v", rt.oid, err)
				}
				d.AddType(rt.oid, *rt.catalog)
				_, err = d.Handle(rel)
			}
			var se *SchemaError
			switch {
			case errors.As(err, &se):
				if rt.catalog == nil || rt.catalog.Kind != cdccleaner.KindNone {
					t.Fatalf("type OID %d refused: %v", rt.oid, err)
				}
				return // refused: the decoder reads the column as before
			case err != nil:
				t.Fatalf("type OID %d: %v", rt.oid, err)
			}
			typ, ok := builtinTypes[rt.oid]
			if !ok {
				typ = *rt.catalog
			}
			cur = &typ
		}
		relation(ta)
		if cur == nil {
			return
		}
		mustHandle(t, d, &pglogrepl.BeginMessage{FinalLSN: 1, Xid: 1})
		relation(tb)
		oldType := uint8('O')
		oldTup := tuple(s("1"), s(oldVal))
		if keyOnly {
			oldType, oldTup = 'K', tuple(s("1"), null)
		}
		ev, err := d.Handle(&pglogrepl.UpdateMessage{RelationID: 1, OldTupleType: oldType, OldTuple: oldTup, NewTuple: tuple(s("1"), s(newVal))})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if keyOnly {
			if len(ev.Candidates) != 0 || len(ev.Missed) != 1 {
				t.Fatalf("key-only old tuple: candidates %q, missed %+v; want none and one", paths(ev), ev.Missed)
			}
			return
		}
		trim := func(v string) string {
			if cur.Padded {
				return strings.TrimRight(v, " ")
			}
			return v
		}
		for _, c := range ev.Candidates {
			switch {
			case c.Path == "":
				t.Fatalf("empty candidate from %q", oldVal)
			case cur.Padded && strings.HasSuffix(c.Path, " "):
				t.Fatalf("candidate %q keeps character(n) padding", c.Path)
			case cur.Kind == cdccleaner.KindText && (c.Path != trim(oldVal) || c.Path == trim(newVal)):
				t.Fatalf("text column: candidate %q from old %q, new %q", c.Path, oldVal, newVal)
			}
		}
	})
}
