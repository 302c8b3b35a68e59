package decoder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Table says which columns of one table hold file paths, and in which storage
// those files live. Schema, Name and Columns are the names as PostgreSQL
// stores them (already unquoted and case-folded).
type Table struct {
	Schema   string
	Name     string
	Columns  []string
	Storage  string
	JSONPath string // for json/jsonb columns: where the paths are; empty means the whole value is one string
	// Kinds says how each column holds paths, as the catalog describes it
	// (a domain or an extension's array type has an OID the decoder cannot
	// recognise). A column missing here is inferred from its type OID.
	Kinds map[string]ValueKind
}

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

// ReasonBadMessage is the failure reason of a cdc_cleaner message whose
// content is not a valid request.
const ReasonBadMessage = "bad_message"

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

	// Warnings are problems worth a log line that do not stop decoding, such
	// as a watched column missing from a table's new definition.
	Warnings []string
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

// column is one watched column of a relation, resolved to its position.
type column struct {
	index   int
	name    string
	storage string
	kind    ValueKind
	json    cdccleaner.JSONPath
	source  string // "schema.table.column"
}

type relation struct {
	id      uint32
	name    string // "schema.table"
	ncols   int
	watched []column
}

type tableKey struct{ schema, name string }

// Decoder keeps the state of one replication session: the relation cache and
// the transaction being decoded. It is not safe for concurrent use. Start a
// new Decoder for every new replication connection: relation OIDs are
// re-announced on each.
type Decoder struct {
	tables    map[tableKey][]Table
	relations map[uint32]*relation
	// storages are the configured storages, true for those whose
	// cdc_cleaner messages are honoured; nil: messages are not decoded.
	storages map[string]bool
	// anyMessages is set when some storage honours messages.
	anyMessages bool

	inTxn      bool
	txn        uint64 // sequence number of the current transaction
	xid        uint32
	finalLSN   cdccleaner.LSN
	commitTime time.Time

	buf []cdccleaner.Candidate
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

// New returns a Decoder that reports references vanishing from tables.
// It validates each table's JSON path.
func New(tables []Table, opts ...Option) (*Decoder, error) {
	d := &Decoder{
		tables:    make(map[tableKey][]Table),
		relations: make(map[uint32]*relation),
	}
	for _, o := range opts {
		o(d)
	}
	for _, t := range tables {
		if t.JSONPath != "" {
			if _, err := cdccleaner.ParseJSONPath(t.JSONPath); err != nil {
				return nil, fmt.Errorf("table %s.%s: %w", t.Schema, t.Name, err)
			}
		}
		k := tableKey{t.Schema, t.Name}
		d.tables[k] = append(d.tables[k], t)
	}
	return d, nil
}

// FinalLSN returns the commit LSN of the transaction being decoded (or of
// the last one, between transactions).
func (d *Decoder) FinalLSN() cdccleaner.LSN { return d.finalLSN }

// Txn returns the sequence number of the transaction being decoded (or of
// the last one, between transactions). The first transaction is 1.
func (d *Decoder) Txn() uint64 { return d.txn }

// Decode decodes one pgoutput message (the WALData of an XLogData message).
// The Candidates slice of the returned event is reused by the next call.
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
		return d.relation(m), nil
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

func (d *Decoder) relation(m *pglogrepl.RelationMessage) Event {
	r := &relation{id: m.RelationID, name: m.Namespace + "." + m.RelationName, ncols: len(m.Columns)}
	d.relations[m.RelationID] = r
	var ev Event
	tables := d.tables[tableKey{m.Namespace, m.RelationName}]
	for _, t := range tables {
		var jp cdccleaner.JSONPath
		if t.JSONPath != "" {
			jp, _ = cdccleaner.ParseJSONPath(t.JSONPath) // validated in New
		}
		for _, name := range t.Columns {
			idx := -1
			for i, c := range m.Columns {
				if c.Name == name {
					idx = i
					break
				}
			}
			if idx < 0 {
				ev.Warnings = append(ev.Warnings, fmt.Sprintf("watched column %q is not in table %s any more (dropped or renamed, or a generated column, which pgoutput does not send); its files will not be cleaned", name, r.name))
				continue
			}
			c := m.Columns[idx]
			if m.ReplicaIdentity != 'f' && c.Flags&1 == 0 {
				ev.Warnings = append(ev.Warnings, fmt.Sprintf("table %s has replica identity %q and watched column %q is not part of it: updates and deletes will not carry its old value; run cdc-cleaner setup to set REPLICA IDENTITY FULL", r.name, m.ReplicaIdentity, name))
			}
			kind := t.Kinds[name]
			if kind == KindAuto {
				kind = kindOf(c.DataType, t.JSONPath != "")
			}
			r.watched = append(r.watched, column{
				index:   idx,
				name:    name,
				storage: t.Storage,
				kind:    kind,
				json:    jp,
				source:  r.name + "." + name,
			})
		}
	}
	return ev
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
	if oldTup == nil || op == "insert" {
		// INSERT adds references only. An UPDATE without an old tuple did not
		// change any replica identity column, and watched columns are part of
		// the identity (checked at startup and warned about in relation()).
		return ev, nil
	}
	for _, c := range r.watched {
		old := oldTup.Columns[c.index]
		if old.DataType == pglogrepl.TupleDataTypeToast {
			// The old value was not sent, so nothing can be said to have
			// vanished. With REPLICA IDENTITY FULL the server detoasts old
			// values, so this only happens for partial identities.
			continue
		}
		var newCol *pglogrepl.TupleDataColumn
		if newTup != nil {
			newCol = newTup.Columns[c.index]
			if newCol.DataType == pglogrepl.TupleDataTypeToast {
				continue // unchanged TOASTed value: same references as before
			}
		}
		oldRefs, err := c.refs(old)
		if err != nil {
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: old value: %v", c.source, err))
			continue
		}
		if len(oldRefs) == 0 {
			continue
		}
		var newRefs []string
		if newCol != nil {
			newRefs, err = c.refs(newCol)
			if err != nil {
				// Unknown new references: keeping everything is the safe side.
				ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: new value: %v", c.source, err))
				continue
			}
		}
		for _, p := range vanished(oldRefs, newRefs) {
			d.buf = append(d.buf, cdccleaner.Candidate{
				Ref:        cdccleaner.Ref{Storage: c.storage, Path: p},
				Source:     c.source,
				Txn:        d.txn,
				Xid:        d.xid,
				CommitLSN:  d.finalLSN,
				CommitTime: d.commitTime,
			})
		}
	}
	ev.Candidates = d.buf
	return ev, nil
}

// vanished returns the distinct elements of old that are not in new.
func vanished(old, new []string) []string {
	var out []string
	for i, p := range old {
		if contains(new, p) || contains(old[:i], p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
