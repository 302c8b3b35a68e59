package decoder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Kind is what a decoded message was.
type Kind int

const (
	// KindOther: nothing the caller needs to act on (relation, type, origin,
	// changes to unwatched tables).
	KindOther Kind = iota
	// KindBegin: a transaction starts; Event.Xid, FinalLSN and CommitTime are set.
	KindBegin
	// KindCommit: the transaction ends; Event.CommitLSN and EndLSN are set.
	KindCommit
	// KindChange: a row of a watched table changed; Event.Table, Op and
	// Candidates are set (Candidates may be empty).
	KindChange
	// KindTruncate: watched tables were truncated; their files cannot be
	// named. Event.Tables lists them.
	KindTruncate
	// KindMessage: pg_logical_emit_message(true, 'cdc_cleaner', ...) asked
	// for a deletion; Event.Candidates or Event.Bad is set, or
	// Event.Ignored when no storage it could name honours messages.
	KindMessage
)

// MessagePrefix is the prefix of logical decoding messages that request a
// deletion: pg_logical_emit_message(true, 'cdc_cleaner',
// '{"storage":"media","path":"a/b.jpg"}').
const MessagePrefix = "cdc_cleaner"

// Failure reasons the decoder's events lead to.
const (
	// ReasonBadMessage: a cdc_cleaner message whose content is not a valid
	// request.
	ReasonBadMessage = "bad_message"
	// ReasonOldValuesMissing: changes of a transaction did not carry the
	// old values of a watched column (Event.Missed); the paths that
	// vanished cannot be named, and only scan finds their files.
	ReasonOldValuesMissing = "old_values_missing"
	// ReasonTruncated: a watched table was truncated; only scan finds the
	// files its rows referenced.
	ReasonTruncated = "truncated"
)

// Event is the decoded meaning of one pgoutput message.
type Event struct {
	Kind Kind

	// KindBegin
	Xid        uint32
	FinalLSN   cdccleaner.LSN
	CommitTime time.Time

	// KindCommit
	CommitLSN cdccleaner.LSN
	EndLSN    cdccleaner.LSN

	// KindChange
	Table      string // "schema.table", for logs and metrics
	Op         string // "insert", "update" or "delete"
	Candidates []cdccleaner.Candidate
	// References are the paths the change references anew (an INSERT's
	// values, the paths an UPDATE's new values hold that its old ones did
	// not), each as a Candidate naming where and when: promise 7 compares
	// them with the journal, so that a removed file referenced again comes
	// back. They never cause a deletion.
	References []cdccleaner.Candidate

	// KindTruncate
	Tables []string

	// KindMessage: a transactional logical decoding message with the
	// cdc_cleaner prefix asked for a deletion. Candidates holds it, or Bad
	// holds it when its content is not a valid request (recorded as failed,
	// never guessed).
	Bad []cdccleaner.Failure
	// Ignored says why a cdc_cleaner message was ignored: it names a
	// storage that does not honour messages (any role that can log in may
	// emit one), or, when no storage honours them, it is any request at
	// all. IgnoredStorage is the configured storage it named, if any.
	Ignored        string
	IgnoredStorage string

	// Missed lists, for KindChange, the watched columns whose old value
	// the change did not carry (the table's replica identity is not FULL,
	// or the row is in a partition without it): whatever paths vanished
	// cannot be named.
	Missed []Missed

	// Unprefixed lists, for KindChange, the entries with strip_prefix
	// that held a value with none of the prefixes (no path of their
	// storage, never deleted), each once.
	Unprefixed []Unprefixed

	// Warnings are problems worth a log line that do not stop decoding,
	// such as a watched table whose replica identity lost a watched column.
	Warnings []string
}

// Unprefixed is an entry that held a value with none of its strip_prefix
// prefixes.
type Unprefixed struct {
	Storage string
	Source  string
}

// Missed is a watched column whose old value a change did not carry.
type Missed struct {
	Storage string
	Source  string // "schema.table.column"
	Op      string // "update" or "delete"
	Reason  string // why the old value is missing, for people
}

// SchemaError means a watched table's definition, at this point of the
// stream, no longer fits the configuration: a watched column was renamed
// or dropped, or its type cannot hold paths as configured. Nothing after
// it can be decoded correctly until the configuration is changed.
type SchemaError struct {
	Table   string // "schema.table"
	Column  string
	Problem string
	// Missing is set when the column is not in the Relation message at
	// all (renamed or dropped).
	Missing bool
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("watched column %q of %s %s", e.Column, e.Table, e.Problem)
}

// UnknownTypeError means a watched column has a type the decoder does not
// know by OID (a domain, an extension's type). The caller looks it up in
// the catalog, describes it with AddType and decodes the message again;
// the decoder's state did not change.
type UnknownTypeError struct {
	Table  string
	Column string
	OID    uint32
}

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("watched column %q of %s has type OID %d, which the decoder does not know", e.Column, e.Table, e.OID)
}

// Errors returned by Decode.
var (
	// ErrMalformed means the message could not be parsed; the stream cannot
	// be trusted past it.
	ErrMalformed = errors.New("malformed pgoutput message")
	// ErrUnknownRelation means a row change arrived for a relation whose
	// Relation message was never seen in this session.
	ErrUnknownRelation = errors.New("row change for unknown relation")
	// ErrNoTransaction means a row change arrived outside Begin/Commit.
	ErrNoTransaction = errors.New("row change outside a transaction")
)

// column is one watched entry of a relation (a column, or a template over
// several), resolved to positions.
type column struct {
	index   int    // the column's position; -1 for a template
	name    string // the column's name, or the template
	storage string
	kind    cdccleaner.ValueKind
	padded  bool // character(n): trailing spaces are not part of a path
	inKey   bool // every column it reads is part of the relation's replica identity
	json    cdccleaner.JSONPath
	source  string // "schema.table.column", or "schema.table.{template}"

	tpl     *cdccleaner.Template
	derived []cdccleaner.Template
	inputs  map[string]input // the template's columns, by name
	match   []matchInput
	strip   cdccleaner.Column // its StripPrefix
	reads   []int             // every position it reads, the column's or the template's first
}

// input is a column a template or a match reads.
type input struct {
	index  int
	padded bool
}

// matchInput is a condition of an entry's match, resolved.
type matchInput struct {
	input
	value string
}

type relation struct {
	id          uint32
	name        string // "schema.table"
	partitioned bool   // a partitioned table (Column.Partitioned)
	ncols       int
	names       []string          // every column's name, by position
	identity    uint8             // replica identity: 'd'efault, 'n'othing, 'f'ull, 'i'ndex
	columns     map[string]uint32 // every column's type, by name
	watched     []column
}

type tableKey struct{ schema, name string }

// Decoder keeps the state of one replication session: the relation cache and
// the transaction being decoded. It is not safe for concurrent use. Start a
// new Decoder for every new replication connection: relation OIDs are
// re-announced on each.
type Decoder struct {
	tables    map[tableKey][]cdccleaner.Column // watched columns, by table
	relations map[uint32]*relation
	// storages are the configured storages, true for those whose
	// cdc_cleaner messages are honoured; nil: messages are not decoded.
	storages map[string]bool
	// anyMessages is set when some storage honours messages.
	anyMessages bool
	// types describes column types the decoder does not know by OID.
	types map[uint32]cdccleaner.ColumnType
	// last is the relation of the last Relation message.
	last *relation
	// partial holds, per watched relation published through its
	// partitions (publish_via_partition_root), the partitions seen
	// without a replica identity that covers the watched columns.
	partial map[uint32]map[uint32]bool

	inTxn      bool
	txn        uint64 // sequence number of the current transaction
	xid        uint32
	finalLSN   cdccleaner.LSN
	commitTime time.Time

	buf    []cdccleaner.Candidate
	refBuf []cdccleaner.Candidate
}

// Option configures a Decoder.
type Option func(*Decoder)

// Messages decodes transactional logical decoding messages with
// MessagePrefix. storages maps every configured storage name to whether
// it honours them (messages: true): a request naming one that does is a
// candidate; a request naming one that does not is ignored (Event.Ignored),
// since any role that can log in may emit a message. When no storage
// honours messages, every request is ignored, malformed ones included;
// otherwise a malformed request, or one naming no configured storage, is a
// failure (Event.Bad).
func Messages(storages map[string]bool) Option {
	return func(d *Decoder) {
		d.storages = map[string]bool{}
		d.anyMessages = false
		for s, on := range storages {
			d.storages[s] = on
			d.anyMessages = d.anyMessages || on
		}
	}
}

// Types describes column types that the decoder does not know by OID
// (domains, citext, an extension's arrays), as the catalog says they hold
// paths, besides those of the columns New is given; more can be added
// later with AddType.
func Types(types map[uint32]cdccleaner.ColumnType) Option {
	return func(d *Decoder) {
		for oid, t := range types {
			d.types[oid] = t
		}
	}
}

// AddType describes a column type the decoder does not know by OID, after
// an UnknownTypeError. A type of cdccleaner.KindNone cannot hold paths.
func (d *Decoder) AddType(oid uint32, t cdccleaner.ColumnType) { d.types[oid] = t }

// New returns a Decoder that reports references vanishing from the
// watched columns of columns (protect columns are left out). A column's
// TypeOID and Type, when set (inspection fills them), describe its type as
// the catalog does, so that the decoder reads a domain or citext value
// exactly as the reference check searches it.
func New(columns []cdccleaner.Column, opts ...Option) *Decoder {
	d := &Decoder{
		tables:    make(map[tableKey][]cdccleaner.Column),
		relations: make(map[uint32]*relation),
		types:     make(map[uint32]cdccleaner.ColumnType),
		partial:   make(map[uint32]map[uint32]bool),
	}
	for _, c := range columns {
		if c.Protect {
			continue
		}
		k := tableKey{c.Schema, c.Table}
		d.tables[k] = append(d.tables[k], c)
		if c.TypeOID != 0 {
			d.types[c.TypeOID] = c.Type
		}
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// FinalLSN returns the commit LSN of the transaction being decoded (or of
// the last one, between transactions).
func (d *Decoder) FinalLSN() cdccleaner.LSN { return d.finalLSN }

// Candidate returns ref as a candidate of the transaction being decoded.
func (d *Decoder) Candidate(ref cdccleaner.Ref, source string) cdccleaner.Candidate {
	return cdccleaner.Candidate{Ref: ref, Source: source, Txn: d.txn, Xid: d.xid, CommitLSN: d.finalLSN, CommitTime: d.commitTime}
}

// Txn returns the sequence number of the transaction being decoded (or of
// the last one, between transactions). The first transaction is 1.
func (d *Decoder) Txn() uint64 { return d.txn }

// Decode decodes one pgoutput message (the WALData of an XLogData message).
// The Candidates and References slices of the returned event are reused by
// the next call.
func (d *Decoder) Decode(data []byte) (Event, error) {
	msg, err := parse(data)
	if err != nil {
		return Event{}, err
	}
	return d.Handle(msg)
}

// parse wraps pglogrepl.Parse, which indexes its input without checking
// lengths: a short or corrupt message must be an error, never a panic.
func parse(data []byte) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if err := checkLengths(data); err != nil {
		return nil, fmt.Errorf("%w: type %q, %d bytes: %v", ErrMalformed, data[0], len(data), err)
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("%w: type %q, %d bytes: %v", ErrMalformed, data[0], len(data), r)
		}
	}()
	msg, err = pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: type %q, %d bytes: %v", ErrMalformed, data[0], len(data), err)
	}
	return msg, nil
}

// Handle decodes an already parsed message. Tests build messages as structs
// and call it directly.
func (d *Decoder) Handle(msg pglogrepl.Message) (Event, error) {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		if d.inTxn {
			return Event{}, fmt.Errorf("%w: begin of xid %d inside another transaction", ErrMalformed, m.Xid)
		}
		d.inTxn = true
		d.txn++
		d.finalLSN = cdccleaner.LSN(m.FinalLSN)
		d.xid = m.Xid
		d.commitTime = m.CommitTime
		return Event{Kind: KindBegin, Xid: m.Xid, FinalLSN: d.finalLSN, CommitTime: m.CommitTime}, nil
	case *pglogrepl.CommitMessage:
		if !d.inTxn {
			return Event{}, fmt.Errorf("%w: commit outside a transaction", ErrMalformed)
		}
		d.inTxn = false
		return Event{Kind: KindCommit, CommitLSN: cdccleaner.LSN(m.CommitLSN), EndLSN: cdccleaner.LSN(m.TransactionEndLSN)}, nil
	case *pglogrepl.RelationMessage:
		return d.relation(m)
	case *pglogrepl.InsertMessage:
		return d.change(m.RelationID, "insert", 0, nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		return d.change(m.RelationID, "update", m.OldTupleType, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return d.change(m.RelationID, "delete", m.OldTupleType, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		var ev Event
		for _, id := range m.RelationIDs {
			if r, ok := d.relations[id]; ok && len(r.watched) > 0 {
				ev.Tables = append(ev.Tables, r.name)
			}
		}
		if len(ev.Tables) > 0 {
			ev.Kind = KindTruncate
		}
		return ev, nil
	case *pglogrepl.LogicalDecodingMessage:
		return d.message(m)
	default:
		// Type and Origin messages carry nothing this decoder acts on.
		return Event{}, nil
	}
}

// message turns a transactional cdc_cleaner message into a candidate, or a
// failure when its content is not exactly {"storage": ..., "path": ...}
// naming a configured storage, or ignores it when the storage does not
// honour messages (see Messages). Other prefixes and non-transactional
// messages (which are not tied to a commit) are not the cleaner's.
func (d *Decoder) message(m *pglogrepl.LogicalDecodingMessage) (Event, error) {
	if d.storages == nil || !m.Transactional || m.Prefix != MessagePrefix {
		return Event{}, nil
	}
	if !d.inTxn {
		return Event{}, fmt.Errorf("%w: transactional message outside a transaction", ErrMalformed)
	}
	c := cdccleaner.Candidate{
		Source:     "message",
		Txn:        d.txn,
		Xid:        d.xid,
		CommitLSN:  d.finalLSN,
		CommitTime: d.commitTime,
	}
	storage, path, err := parseRequest(m.Content)
	named := ""
	if storage != nil {
		named = *storage
	}
	if on, configured := d.storages[named]; !d.anyMessages || configured && !on {
		ev := Event{Kind: KindMessage, Ignored: "no storage honours cdc_cleaner messages (messages: true)"}
		if configured {
			ev.IgnoredStorage = named
			ev.Ignored = fmt.Sprintf("storage %q does not honour cdc_cleaner messages (messages: true)", named)
		}
		return ev, nil
	}
	switch {
	case err != nil:
		err = fmt.Errorf("parse message content: %w", err)
	case storage == nil || path == nil:
		err = errors.New(`message content must be {"storage": "...", "path": "..."}`)
	case !d.storages[*storage]:
		err = fmt.Errorf("message names storage %q, which is not configured", *storage)
	case *path == "":
		err = errors.New("message has an empty path")
	}
	d.buf = d.buf[:0]
	if err != nil {
		if _, configured := d.storages[named]; configured {
			// Only a configured name: anyone may emit a message, and
			// the storage is a metric label.
			c.Storage = named
		}
		c.Path = string(m.Content)
		if path != nil {
			c.Path = *path
		}
		return Event{Kind: KindMessage, Bad: []cdccleaner.Failure{{Candidate: c, Reason: ReasonBadMessage, Detail: err.Error()}}}, nil
	}
	c.Storage, c.Path = *storage, *path
	d.buf = append(d.buf, c)
	return Event{Kind: KindMessage, Candidates: d.buf}, nil
}

// parseRequest reads a message's content as the JSON object {"storage": s,
// "path": p}, strictly, so that a request is never guessed at: keys spelled
// exactly so (encoding/json would match "Path" or "ſtorage" to a struct
// field), each at most once (with a duplicate, which one was meant?),
// string values, and nothing after the object. Content that is not valid
// UTF-8 and strings holding U+FFFD are refused too: encoding/json turns
// invalid bytes and lone surrogate escapes into U+FFFD, which would name a
// file other than the one sent. It returns the fields it read, also on
// error.
func parseRequest(content []byte) (storage, path *string, err error) {
	if !utf8.Valid(content) {
		return nil, nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	next := func() (json.Token, error) {
		tok, err := dec.Token()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the object is not complete
		}
		return tok, err
	}
	tok, err := next()
	if err != nil {
		return nil, nil, err
	}
	if tok != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := next()
		if err != nil {
			return storage, path, err
		}
		key, _ := tok.(string)
		var field **string
		switch key {
		case "storage":
			field = &storage
		case "path":
			field = &path
		default:
			return storage, path, fmt.Errorf("unknown field %q", key)
		}
		if *field != nil {
			return storage, path, fmt.Errorf("duplicate field %q", key)
		}
		if tok, err = next(); err != nil {
			return storage, path, err
		}
		v, ok := tok.(string)
		switch {
		case !ok:
			return storage, path, fmt.Errorf("field %q is not a string", key)
		case strings.ContainsRune(v, utf8.RuneError):
			return storage, path, fmt.Errorf("field %q holds U+FFFD (a replacement character, or a lone surrogate escape)", key)
		}
		*field = &v
	}
	if tok, err := next(); err != nil || tok != json.Delim('}') {
		if err == nil {
			err = fmt.Errorf("unexpected %v", tok)
		}
		return storage, path, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return storage, path, errors.New("trailing data after the JSON object")
	}
	return storage, path, nil
}

// relation caches a Relation message. It resolves every watched column of
// the table by name and type, and changes nothing when one no longer fits
// (SchemaError) or has a type to look up (UnknownTypeError).
func (d *Decoder) relation(m *pglogrepl.RelationMessage) (Event, error) {
	r := &relation{id: m.RelationID, name: m.Namespace + "." + m.RelationName, ncols: len(m.Columns), identity: m.ReplicaIdentity,
		columns: make(map[string]uint32, len(m.Columns))}
	for _, c := range m.Columns {
		r.columns[c.Name] = c.DataType
		r.names = append(r.names, c.Name)
	}
	var ev Event
	watched := d.tables[tableKey{m.Namespace, m.RelationName}]
	if len(watched) == 0 {
		d.partition(r, m)
		d.relations[m.RelationID] = r
		d.last = r
		return ev, nil
	}
	for _, wc := range watched {
		r.partitioned = r.partitioned || wc.Partitioned
		c, warnings, err := d.resolve(r, m, wc)
		if err != nil {
			return Event{}, err
		}
		ev.Warnings = append(ev.Warnings, warnings...)
		r.watched = append(r.watched, c)
	}
	d.relations[m.RelationID] = r
	d.last = r
	return ev, nil
}

// typeOf returns how a column type holds paths, as the decoder knows it.
func (d *Decoder) typeOf(oid uint32) (cdccleaner.ColumnType, bool) {
	if t, ok := builtinTypes[oid]; ok {
		return t, true
	}
	t, ok := d.types[oid]
	return t, ok
}

// resolve finds the columns entry wc reads in m and checks their types.
func (d *Decoder) resolve(r *relation, m *pglogrepl.RelationMessage, wc cdccleaner.Column) (column, []string, error) {
	c := column{index: -1, name: wc.Name, storage: wc.Storage, json: wc.JSONPath, source: r.name + "." + wc.Name,
		tpl: wc.Template, derived: wc.Derived, strip: cdccleaner.Column{StripPrefix: wc.StripPrefix}, inKey: true}
	var notKey []string // columns it reads outside the replica identity
	find := func(name string) (pglogrepl.RelationMessageColumn, int, error) {
		idx := columnIndex(m, name)
		if idx < 0 {
			return pglogrepl.RelationMessageColumn{}, 0, &SchemaError{Table: r.name, Column: name, Missing: true,
				Problem: "is not in the table at this point of the stream: it was renamed or dropped (or made a generated column, which pgoutput does not send)"}
		}
		col := *m.Columns[idx]
		if col.Flags&1 == 0 {
			c.inKey = false
			notKey = append(notKey, strconv.Quote(name))
		}
		c.reads = append(c.reads, idx)
		return col, idx, nil
	}
	if wc.Template != nil {
		c.name = wc.Template.String()
		c.source = r.name + "." + c.name
		c.kind = cdccleaner.KindText
		c.inputs = map[string]input{}
		for _, name := range wc.Template.Columns() {
			col, idx, err := find(name)
			if err != nil {
				return column{}, nil, err
			}
			typ, ok := d.typeOf(col.DataType)
			switch {
			case !ok:
				return column{}, nil, &UnknownTypeError{Table: r.name, Column: name, OID: col.DataType}
			case typ.Kind != cdccleaner.KindText:
				return column{}, nil, &SchemaError{Table: r.name, Column: name,
					Problem: fmt.Sprintf("is not text at this point of the stream (type OID %d, %s), but the template %s names it: a template's columns are text, varchar or character", col.DataType, typ.Kind, c.name)}
			}
			c.inputs[name] = input{index: idx, padded: typ.Padded}
		}
	} else {
		col, idx, err := find(wc.Name)
		if err != nil {
			return column{}, nil, err
		}
		typ, ok := d.typeOf(col.DataType)
		if !ok {
			return column{}, nil, &UnknownTypeError{Table: r.name, Column: wc.Name, OID: col.DataType}
		}
		switch {
		case typ.Kind == cdccleaner.KindNone:
			return column{}, nil, &SchemaError{Table: r.name, Column: wc.Name,
				Problem: fmt.Sprintf("has a type (OID %d) that cannot hold paths at this point of the stream: file columns are text, varchar, character, arrays of them, json or jsonb", col.DataType)}
		case wc.JSONPath != nil && typ.Kind != cdccleaner.KindJSON:
			return column{}, nil, &SchemaError{Table: r.name, Column: wc.Name,
				Problem: fmt.Sprintf("is not json or jsonb at this point of the stream (type OID %d), but json_path is set for it", col.DataType)}
		}
		c.index, c.kind, c.padded = idx, typ.Kind, typ.Padded
	}
	for _, mc := range wc.Match {
		col, idx, err := find(mc.Column)
		if err != nil {
			return column{}, nil, err
		}
		// Text only: pgoutput sends a value in its type's output form,
		// which the reference check's col::text matches for text types
		// only (a boolean is sent as "t", cast as "true"); character(n)
		// drops its padding on both sides.
		typ, ok := d.typeOf(col.DataType)
		switch {
		case !ok:
			return column{}, nil, &UnknownTypeError{Table: r.name, Column: mc.Column, OID: col.DataType}
		case typ.Kind != cdccleaner.KindText:
			return column{}, nil, &SchemaError{Table: r.name, Column: mc.Column,
				Problem: fmt.Sprintf("is not text at this point of the stream (type OID %d, %s), but a match compares it: match compares text, varchar or character columns", col.DataType, typ.Kind)}
		}
		c.match = append(c.match, matchInput{input: input{index: idx, padded: typ.Padded}, value: mc.Value})
	}
	var warnings []string
	const consequence = "its UPDATE and DELETE do not carry old file paths, so they are recorded in cdc_cleaner.failed_deletions (old_values_missing) instead of cleaned; run cdc-cleaner setup to set REPLICA IDENTITY FULL"
	switch {
	case len(notKey) == 0 || m.ReplicaIdentity == 'f':
	case c.tpl == nil && len(c.match) == 0:
		warnings = append(warnings, fmt.Sprintf("table %s has replica identity %s and watched column %s is not part of it: %s", r.name, identityName(m.ReplicaIdentity), notKey[0], consequence))
	default:
		warnings = append(warnings, fmt.Sprintf("table %s has replica identity %s and %s reads %s, not all part of it: %s", r.name, identityName(m.ReplicaIdentity), c.source, strings.Join(notKey, ", "), consequence))
	}
	return c, warnings, nil
}

// partition notes the replica identity of a partition whose changes are
// published as changes of a watched table (publish_via_partition_root):
// pgoutput sends the partition's Relation message right after the watched
// table's, and then sends the partition's changes under the watched
// table's relation, its old tuple marked as a full one ('O') even when the
// partition's identity sent only its key, the other columns as NULL. So a
// NULL in a watched column of such a change may be a value that was not
// sent.
//
// Only a Relation message that directly follows a watched partitioned
// table's, and whose columns are among that table's (a partition's columns
// are the table's; one generated in the partition is not sent), is taken
// for a partition's.
func (d *Decoder) partition(r *relation, m *pglogrepl.RelationMessage) {
	root := d.last
	if root == nil || !root.partitioned || len(root.watched) == 0 || root.id == r.id {
		return
	}
	for name, typ := range r.columns {
		if t, ok := root.columns[name]; !ok || t != typ {
			return // not a partition of root: it has other columns
		}
	}
	partial := false
	for _, c := range root.watched {
		for _, ri := range c.reads {
			i := columnIndex(m, root.names[ri])
			if i < 0 || m.ReplicaIdentity != 'f' && m.Columns[i].Flags&1 == 0 {
				partial = true // not sent, or its old value is not
			}
		}
	}
	parts := d.partial[root.id]
	if parts == nil {
		parts = map[uint32]bool{}
		d.partial[root.id] = parts
	}
	if partial {
		parts[r.id] = true
	} else {
		delete(parts, r.id)
	}
}

// columnIndex returns the position of the column named name in m, or -1.
func columnIndex(m *pglogrepl.RelationMessage, name string) int {
	for i, c := range m.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// identityName spells a replica identity as ALTER TABLE does.
func identityName(id uint8) string {
	switch id {
	case 'd':
		return "DEFAULT"
	case 'n':
		return "NOTHING"
	case 'f':
		return "FULL"
	case 'i':
		return "USING INDEX"
	}
	return fmt.Sprintf("%q", id)
}

func (d *Decoder) change(relID uint32, op string, oldType uint8, oldTup, newTup *pglogrepl.TupleData) (Event, error) {
	r, ok := d.relations[relID]
	if !ok {
		return Event{}, fmt.Errorf("%w: relation OID %d (%s)", ErrUnknownRelation, relID, op)
	}
	if len(r.watched) == 0 {
		return Event{Kind: KindChange, Table: r.name, Op: op}, nil
	}
	if !d.inTxn {
		return Event{}, fmt.Errorf("%w: %s on %s", ErrNoTransaction, op, r.name)
	}
	for _, tup := range []*pglogrepl.TupleData{oldTup, newTup} {
		if tup != nil && len(tup.Columns) != r.ncols {
			return Event{}, fmt.Errorf("%w: %s on %s has %d columns, relation has %d", ErrMalformed, op, r.name, len(tup.Columns), r.ncols)
		}
	}
	ev := Event{Kind: KindChange, Table: r.name, Op: op}
	d.buf = d.buf[:0]
	d.refBuf = d.refBuf[:0]
	// A key-only old tuple ('K') sends the columns outside the key as
	// NULL, and so does a partition without REPLICA IDENTITY FULL under a
	// FULL root, in an old tuple marked full: such a NULL is a value that
	// was not sent.
	oldNullUnsent := oldType == 'K' || len(d.partial[r.id]) > 0
	for _, c := range r.watched {
		if newTup != nil && c.unchanged(newTup) {
			continue // every column it reads is an unchanged TOASTed value: same references as before
		}
		if op == "insert" {
			// An INSERT adds references only.
			d.newRefs(&ev, c, newTup, nil, nil)
			continue
		}
		switch {
		case oldTup == nil && r.identity != 'f' && c.inKey:
			// An UPDATE without an old tuple did not change the replica
			// identity, and every column the entry reads is part of it.
			continue
		case oldTup == nil:
			// A column it reads is not part of the identity (or the row
			// is in a partition without REPLICA IDENTITY FULL, whose old
			// tuple would always be sent): it may have changed, unseen.
			ev.Missed = append(ev.Missed, d.missed(r, c, op))
			d.newRefs(&ev, c, newTup, nil, nil)
			continue
		}
		oldValues := tupleValues(oldTup, nil, oldNullUnsent)
		oldRefs, state, err := c.paths(oldValues, &ev)
		if err != nil {
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: old value: %v", c.source, err))
			// Every new reference is compared with the journal.
			d.newRefs(&ev, c, newTup, oldTup, nil)
			continue
		}
		if state == valuesUnsent {
			ev.Missed = append(ev.Missed, d.missed(r, c, op))
			d.newRefs(&ev, c, newTup, oldTup, nil)
			continue
		}
		var newRefs []string
		newValues := func(int) rowValue { return rowValue{null: true} }
		if newTup != nil {
			newValues = tupleValues(newTup, oldTup, oldNullUnsent)
			newRefs, state, err = c.paths(newValues, &ev)
			if err == nil && state == valuesUnsent {
				err = errors.New("a column it reads is an unchanged TOASTed value whose old value was not sent")
			}
			if err != nil {
				// Unknown new references: keeping everything is the safe side.
				ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: new value: %v", c.source, err))
				continue
			}
		}
		for _, p := range vanished(oldRefs, newRefs) {
			d.buf = d.withDerived(d.buf, c, oldValues, p)
		}
		for _, p := range vanished(newRefs, oldRefs) {
			d.refBuf = d.withDerived(d.refBuf, c, newValues, p)
		}
	}
	ev.Candidates = d.buf
	ev.References = d.refBuf
	return ev, nil
}

// valuesState says whether an entry's paths could be read from a row.
type valuesState int

const (
	valuesRead   valuesState = iota
	valuesUnsent             // a column it reads was not sent (TOASTed, or NULL standing for unsent)
)

// rowValue is one column of a row as a change carries it.
type rowValue struct {
	data   []byte
	null   bool
	unsent bool
}

// text is v's text (without character(n)'s padding when padded); ok is
// false for a NULL or a value not sent.
func (v rowValue) text(padded bool) (string, bool) {
	if v.null || v.unsent {
		return "", false
	}
	s := string(v.data)
	if padded {
		s = strings.TrimRight(s, " ")
	}
	return s, true
}

// tupleValues reads the columns of tup; an unchanged TOASTed value is
// taken from old when old carries it. nullUnsent says that a NULL of tup
// stands for a value that was not sent.
func tupleValues(tup, old *pglogrepl.TupleData, nullUnsent bool) func(i int) rowValue {
	return func(i int) rowValue {
		v := tup.Columns[i]
		if v.DataType == pglogrepl.TupleDataTypeToast && old != nil {
			v = old.Columns[i]
		}
		switch v.DataType {
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			return rowValue{data: v.Data}
		case pglogrepl.TupleDataTypeNull:
			return rowValue{null: true, unsent: nullUnsent}
		default:
			return rowValue{unsent: true}
		}
	}
}

// unchanged reports whether every column c reads is an unchanged TOASTed
// value in tup.
func (c column) unchanged(tup *pglogrepl.TupleData) bool {
	for _, i := range c.reads {
		if tup.Columns[i].DataType != pglogrepl.TupleDataTypeToast {
			return false
		}
	}
	return true
}

// paths returns the paths a row references through c: none when its
// match does not hold, else the column's paths or the template's one,
// under strip_prefix (a value with none of the prefixes is no path; its
// source is added to ev.Unprefixed).
func (c column) paths(value func(i int) rowValue, ev *Event) ([]string, valuesState, error) {
	var unsent bool
	text := func(in input) (string, bool) {
		v := value(in.index)
		unsent = unsent || v.unsent
		return v.text(in.padded)
	}
	for _, m := range c.match {
		v, ok := text(m.input)
		if unsent {
			return nil, valuesUnsent, nil
		}
		if !ok || v != m.value {
			return nil, valuesRead, nil
		}
	}
	var raw []string
	if c.tpl != nil {
		p, ok := c.tpl.Render(func(col string) (string, bool) { return text(c.inputs[col]) })
		if unsent {
			return nil, valuesUnsent, nil
		}
		if ok {
			raw = []string{p}
		}
	} else {
		v := value(c.index)
		if v.unsent {
			return nil, valuesUnsent, nil
		}
		if !v.null {
			var err error
			if raw, err = Paths(cdccleaner.ColumnType{Kind: c.kind, Padded: c.padded}, c.json, v.data); err != nil {
				return nil, valuesRead, err
			}
		}
	}
	if len(c.strip.StripPrefix) == 0 {
		return raw, valuesRead, nil
	}
	out := raw[:0]
	for _, v := range raw {
		if p, ok := c.strip.Strip(v); ok {
			out = append(out, p)
		} else if u := (Unprefixed{c.storage, c.source}); !slices.Contains(ev.Unprefixed, u) {
			ev.Unprefixed = append(ev.Unprefixed, u)
		}
	}
	return out, valuesRead, nil
}

// candidate is path of column c in the current transaction.
func (d *Decoder) candidate(c column, path string) cdccleaner.Candidate {
	return cdccleaner.Candidate{
		Ref:        cdccleaner.Ref{Storage: c.storage, Path: path},
		Source:     c.source,
		Txn:        d.txn,
		Xid:        d.xid,
		CommitLSN:  d.finalLSN,
		CommitTime: d.commitTime,
	}
}

// newRefs adds to ev.References the paths of the new row newTup (nil:
// none), whose unchanged TOASTed values old may carry, that are not among
// prev.
func (d *Decoder) newRefs(ev *Event, c column, newTup, old *pglogrepl.TupleData, prev []string) {
	if newTup == nil {
		return
	}
	values := tupleValues(newTup, old, false)
	refs, state, err := c.paths(values, ev)
	if err == nil && state == valuesUnsent {
		err = errors.New("a column it reads is an unchanged TOASTed value whose old value was not sent")
	}
	if err != nil {
		ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: new value: %v", c.source, err))
		return
	}
	for _, p := range vanished(refs, prev) {
		d.refBuf = d.withDerived(d.refBuf, c, values, p)
	}
}

// withDerived appends to buf the candidate of path p of entry c, then one
// for each of c's derived files and prefixes, rendered from the row whose
// columns value reads (a template's columns), or from p itself for an
// entry of one column; a derived template the row cannot render (a NULL,
// a slice outside a value) names nothing.
func (d *Decoder) withDerived(buf []cdccleaner.Candidate, c column, value func(i int) rowValue, p string) []cdccleaner.Candidate {
	buf = append(buf, d.candidate(c, p))
	for _, t := range c.derived {
		dp, ok := t.Render(func(col string) (string, bool) {
			if c.tpl == nil {
				return p, true // validated: it names the entry's one column
			}
			in, ok := c.inputs[col]
			if !ok {
				return "", false
			}
			return value(in.index).text(in.padded)
		})
		if ok && dp != p {
			dc := d.candidate(c, dp)
			dc.Parent, dc.Prefix = p, t.Prefix()
			buf = append(buf, dc)
		}
	}
	return buf
}

// missed describes a watched column whose old value a change lacks.
func (d *Decoder) missed(r *relation, c column, op string) Missed {
	reason := fmt.Sprintf("the table's replica identity is %s, which does not include %q", identityName(r.identity), c.name)
	if r.identity == 'f' {
		reason = "the row may be in a partition without REPLICA IDENTITY FULL, which sends its old values as NULL"
	}
	return Missed{Storage: c.storage, Source: c.source, Op: op, Reason: reason}
}

// vanished returns the distinct elements of old that are not in new.
func vanished(old, new []string) []string {
	var out []string
	for i, p := range old {
		if slices.Contains(new, p) || slices.Contains(old[:i], p) {
			continue
		}
		out = append(out, p)
	}
	return out
}
