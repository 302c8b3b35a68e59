package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Message is one item of the stream, in server order: a pgoutput message, or
// a keepalive carrying the server's WAL end.
type Message struct {
	WALStart cdccleaner.LSN
	Data     []byte         // pgoutput message bytes; nil for a keepalive
	WALEnd   cdccleaner.LSN // keepalive only: the server's WAL end
}

// IsKeepalive reports whether m is a keepalive rather than a pgoutput message.
func (m Message) IsKeepalive() bool { return m.Data == nil }

// StreamConfig says which slot to read and how to acknowledge.
type StreamConfig struct {
	URL            string // the application database; replication=database is added
	Slot           string
	Publication    string
	StatusInterval time.Duration
	// Confirm, when false (dry run), never moves the slot: every status
	// update reports the slot's position at start.
	Confirm bool
	Logger  zerolog.Logger
}

// SlotInUseError is returned when another process streams from the slot.
type SlotInUseError struct {
	Slot string
	PID  int
}

func (e *SlotInUseError) Error() string {
	return fmt.Sprintf("replication slot %q is in use by PID %d", e.Slot, e.PID)
}

// Errors returned by OpenStream.
var (
	// ErrSlotMissing means the replication slot does not exist; run setup.
	ErrSlotMissing = errors.New("replication slot does not exist; run cdc-cleaner setup")
	// ErrSlotInvalidated means the server dropped the WAL the slot needed
	// (max_slot_wal_keep_size): changes were lost to the cleaner. Recreate
	// the slot (teardown, setup) and run scan for what was missed.
	// ErrSlotForeign means the slot belongs to another consumer (another
	// output plugin): the cleaner must never read it.
	ErrSlotForeign     = errors.New("replication slot belongs to another consumer")
	ErrSlotInvalidated = errors.New("replication slot was invalidated by the server (max_slot_wal_keep_size exceeded); run cdc-cleaner teardown and setup, then cdc-cleaner scan to find files orphaned meanwhile")
)

// IsFatal reports whether err means streaming cannot succeed by retrying:
// the slot is gone or unusable.
func IsFatal(err error) bool {
	return errors.Is(err, ErrSlotMissing) || errors.Is(err, ErrSlotInvalidated) || errors.Is(err, ErrSlotForeign)
}

// IsSlotInUse reports whether err says the slot is held by another process,
// and by which PID.
func IsSlotInUse(err error) (int, bool) {
	var e *SlotInUseError
	if errors.As(err, &e) {
		return e.PID, true
	}
	return 0, false
}

// Stream is one replication connection streaming from the slot. It owns the
// connection: only its goroutine reads from or writes to it.
type Stream struct {
	cfg       StreamConfig
	conn      *pgconn.PgConn
	start     cdccleaner.LSN // slot's confirmed_flush_lsn when the stream started
	lastFlush cdccleaner.LSN
	log       zerolog.Logger
	// parallelSet: postgres.url sets max_parallel_workers_per_gather
	// itself, which start0 then leaves as it is.
	parallelSet bool
}

// ReplicationConfig parses url and turns it into a replication connection
// (replication=database) named cdc-cleaner.
func ReplicationConfig(url string) (*pgconn.Config, error) {
	pc, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse postgres.url: %w", err)
	}
	pc.RuntimeParams["replication"] = "database"
	if pc.RuntimeParams["application_name"] == "" {
		pc.RuntimeParams["application_name"] = "cdc-cleaner"
	}
	return pc, nil
}

// URLSets reports whether the runtime parameters a connection URL gave
// (its query, or -c settings in its options) set the setting name; the
// cleaner's own session settings then leave it as the user has it.
func URLSets(params map[string]string, name string) bool {
	_, set := params[name]
	return set || strings.Contains(params["options"], name)
}

// OpenStream connects, checks that the slot exists and is free, and starts
// streaming from it at 0/0, so that the server resumes at the slot's
// confirmed_flush_lsn. Starting at IDENTIFY_SYSTEM's current position instead
// would skip transactions that were received but never settled.
func OpenStream(ctx context.Context, cfg StreamConfig) (*Stream, error) {
	pc, err := ReplicationConfig(cfg.URL)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect for replication: %w", err)
	}
	s := &Stream{cfg: cfg, conn: conn, log: cfg.Logger}
	s.parallelSet = URLSets(pc.RuntimeParams, "max_parallel_workers_per_gather")
	if err := s.start0(ctx); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return s, nil
}

func (s *Stream) start0(ctx context.Context) error {
	// The connection's own queries (the slot's state) are tiny; a
	// parallel plan (PostgreSQL 13 picked one for the slot lookup) would
	// fork workers for nothing. Best effort: a SET, not a startup
	// parameter, which connection poolers refuse.
	if !s.parallelSet {
		_, _ = s.conn.Exec(ctx, "SET max_parallel_workers_per_gather = 0").ReadAll()
	}
	// Slot names are validated as [a-z0-9_]; quoting keeps that safe anyway.
	q := fmt.Sprintf("SELECT coalesce(confirmed_flush_lsn::text, ''), coalesce(active_pid, 0), plugin FROM pg_replication_slots WHERE slot_name = %s AND database = current_database()", cdccleaner.QuoteLiteral(s.cfg.Slot))
	res, err := s.conn.Exec(ctx, q).ReadAll()
	if err != nil {
		return fmt.Errorf("look up slot %q: %w", s.cfg.Slot, err)
	}
	if len(res) != 1 || len(res[0].Rows) == 0 {
		return s.missing(ctx)
	}
	row := res[0].Rows[0]
	if plugin := string(row[2]); plugin != "pgoutput" {
		return fmt.Errorf("slot %q uses output plugin %q, not pgoutput: %w; set postgres.slot to another name and run cdc-cleaner setup", s.cfg.Slot, plugin, ErrSlotForeign)
	}
	if pid, _ := strconv.Atoi(string(row[1])); pid != 0 {
		return &SlotInUseError{Slot: s.cfg.Slot, PID: pid}
	}
	if lsn := string(row[0]); lsn != "" {
		if s.start, err = cdccleaner.ParseLSN(lsn); err != nil {
			return err
		}
	}
	args := []string{
		"proto_version '1'",
		"publication_names " + quoteLiteral(s.cfg.Publication),
	}
	if serverMajor(s.conn.ParameterStatus("server_version")) >= 14 {
		// Logical decoding messages (pg_logical_emit_message); 14+ only.
		args = append(args, "messages 'true'")
	}
	err = pglogrepl.StartReplication(ctx, s.conn, s.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: args,
	})
	if err != nil {
		return classifyStartError(s.cfg.Slot, err)
	}
	s.lastFlush = s.start
	return nil
}

// missing returns the error for a slot the server does not have: a
// *SlotLostError when setup recorded creating it (the slot did not come
// with a failover), else ErrSlotMissing.
func (s *Stream) missing(ctx context.Context) error {
	elsewhere := fmt.Sprintf(`SELECT database FROM pg_replication_slots WHERE slot_name = %s`, cdccleaner.QuoteLiteral(s.cfg.Slot))
	if res, err := s.conn.Exec(ctx, elsewhere).ReadAll(); err == nil && len(res) == 1 && len(res[0].Rows) > 0 {
		return fmt.Errorf("slot %q belongs to database %q, not this one (slot names are shared by every database of the server): %w; set postgres.slot to another name and run cdc-cleaner setup", s.cfg.Slot, res[0].Rows[0][0], ErrSlotForeign)
	}
	res, err := s.conn.Exec(ctx, cdccleaner.SlotRecordedSQL(s.cfg.Slot)).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) == 0 {
		// Not recorded, or the record cannot be read: nothing more to say.
		return fmt.Errorf("slot %q: %w", s.cfg.Slot, ErrSlotMissing)
	}
	at := string(res[0].Rows[0][0])
	timeline := 0
	if sys, err := pglogrepl.IdentifySystem(ctx, s.conn); err == nil {
		timeline = int(sys.Timeline)
	}
	return &SlotLostError{Slot: s.cfg.Slot, Detail: cdccleaner.SlotLost(s.cfg.Slot, at, timeline, serverMajor(s.conn.ParameterStatus("server_version"))*10000)}
}

// SlotLostError is a slot that setup recorded creating but that the
// server does not have: the slot did not come with a failover (see
// cdccleaner.SlotLost). It is ErrSlotMissing for errors.Is.
type SlotLostError struct {
	Slot, Detail string
}

func (e *SlotLostError) Error() string        { return e.Detail }
func (e *SlotLostError) Is(target error) bool { return target == ErrSlotMissing }

// serverMajor reads the major version from the server_version parameter
// ("15.18 (Debian 15.18-0+deb12u1)", "14.2", "17beta1"); 0 if unknown.
// server_version_num is not reported at connection start.
func serverMajor(v string) int {
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

var activePIDRe = regexp.MustCompile(`active for PID (\d+)`)

func classifyStartError(slot string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "55006": // object_in_use
			pid := 0
			if m := activePIDRe.FindStringSubmatch(pgErr.Message); m != nil {
				pid, _ = strconv.Atoi(m[1])
			}
			return &SlotInUseError{Slot: slot, PID: pid}
		case "42704": // undefined_object
			return fmt.Errorf("slot %q: %w", slot, ErrSlotMissing)
		case "55000": // object_not_in_prerequisite_state
			if strings.Contains(pgErr.Message, "invalidated") || strings.Contains(pgErr.Message, "can no longer get changes") {
				return fmt.Errorf("slot %q: %w: %s", slot, ErrSlotInvalidated, pgErr.Message)
			}
		}
	}
	return fmt.Errorf("start replication from slot %q: %w", slot, err)
}

// SlotStart returns the slot's confirmed_flush_lsn when streaming started:
// every transaction that ends after it will be (re)sent.
func (s *Stream) SlotStart() cdccleaner.LSN { return s.start }

// Run reads the stream and sends every message to out, in order, until ctx
// ends (it then returns nil) or the connection fails. It answers keepalives
// and sends a standby status update at least every StatusInterval, also
// while out is full, so the server's wal_sender_timeout never fires however
// slow the consumer is. confirmed reports the LSN that may be confirmed.
func (s *Stream) Run(ctx context.Context, out chan<- Message, confirmed func() cdccleaner.LSN) error {
	// Receiving is bounded by a read deadline on the connection (the next
	// status update), and ctx ends it by moving that deadline to now. A
	// context per message, with its timer and watcher, cost about a tenth
	// of the cleaner's CPU on a stream of small transactions. pgconn keeps
	// the connection and a partly read message across a read timeout.
	nc := s.conn.Conn()
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer func() {
		stop()
		nc.SetReadDeadline(time.Time{})
	}()
	nextStatus := time.Now()
	for {
		if !time.Now().Before(nextStatus) {
			if err := s.sendStatus(confirmed(), false); err != nil {
				return err
			}
			nextStatus = time.Now().Add(s.cfg.StatusInterval)
		}
		if err := nc.SetReadDeadline(nextStatus); err != nil {
			return fmt.Errorf("receive from slot %q: %w", s.cfg.Slot, err)
		}
		// Checked after setting the deadline: a stop that came before it
		// moved the deadline too early to matter.
		if ctx.Err() != nil {
			return nil
		}
		raw, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive from slot %q: %w", s.cfg.Slot, err)
		}
		var m Message
		switch msg := raw.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				return fmt.Errorf("receive from slot %q: empty CopyData message", s.cfg.Slot)
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				m = Message{WALEnd: cdccleaner.LSN(ka.ServerWALEnd)}
				if ka.ReplyRequested {
					nextStatus = time.Now() // answer right away, after handing it on
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				// The receive buffer is reused by the next read: copy.
				data := make([]byte, len(xld.WALData))
				copy(data, xld.WALData)
				if len(data) == 0 {
					continue
				}
				m = Message{WALStart: cdccleaner.LSN(xld.WALStart), Data: data}
			default:
				continue
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("slot %q: %w", s.cfg.Slot, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return fmt.Errorf("slot %q: server ended the replication stream", s.cfg.Slot)
		default:
			continue
		}
		if err := s.deliver(ctx, out, m, confirmed, &nextStatus); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// deliver hands m to out, sending status updates while out is full.
func (s *Stream) deliver(ctx context.Context, out chan<- Message, m Message, confirmed func() cdccleaner.LSN, nextStatus *time.Time) error {
	select {
	case out <- m:
		return nil
	default:
	}
	timer := time.NewTimer(time.Until(*nextStatus))
	defer timer.Stop()
	for {
		select {
		case out <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			if err := s.sendStatus(confirmed(), false); err != nil {
				return err
			}
			*nextStatus = time.Now().Add(s.cfg.StatusInterval)
			timer.Reset(s.cfg.StatusInterval)
		}
	}
}

// sendStatus sends a standby status update with every position explicit:
// write = flush = apply = confirmed. pglogrepl's helper would copy write into
// a zero flush, confirming unsettled work; this never does.
//
// Write is not "last received": the walsender sends a keepalive (whose WAL
// end the tracker follows while idle) only while both our write and flush
// positions are behind what it sent, and a received position computed from
// XLogData headers can pass that after a non-transactional message, which
// would stop the keepalives and leave the slot behind for good.
func (s *Stream) sendStatus(confirmed cdccleaner.LSN, reply bool) error {
	// Until something past the slot's starting position is settled, report
	// no flush position at all (0, which the server ignores): repeating the
	// start could move the slot backwards if another process advanced it
	// between our lookup and START_REPLICATION. A dry run never reports one.
	var flush cdccleaner.LSN
	if s.cfg.Confirm && confirmed > s.start {
		flush = confirmed
	}
	write := flush
	buf := encodeStatus(write, flush, flush, time.Now(), reply)
	if err := s.conn.Frontend().SendUnbufferedEncodedCopyData(buf); err != nil {
		return fmt.Errorf("send standby status to slot %q: %w", s.cfg.Slot, err)
	}
	if flush != s.lastFlush {
		s.log.Debug().Stringer("flush", flush).Msg("confirmed")
		s.lastFlush = flush
	}
	return nil
}

// encodeStatus builds a CopyData message holding a Standby Status Update
// ('r'), as described in PostgreSQL's streaming replication protocol.
func encodeStatus(write, flush, apply cdccleaner.LSN, now time.Time, reply bool) []byte {
	const pgEpochOffset = 946684800 // seconds from 1970-01-01 to 2000-01-01
	micros := now.UnixMicro() - pgEpochOffset*1_000_000
	buf := make([]byte, 0, 5+34)
	buf = append(buf, 'd', 0, 0, 0, 0) // CopyData, length filled below
	buf = append(buf, pglogrepl.StandbyStatusUpdateByteID)
	buf = binary.BigEndian.AppendUint64(buf, uint64(write))
	buf = binary.BigEndian.AppendUint64(buf, uint64(flush))
	buf = binary.BigEndian.AppendUint64(buf, uint64(apply))
	buf = binary.BigEndian.AppendUint64(buf, uint64(micros))
	if reply {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(buf)-1))
	return buf
}

// Close sends a last status update confirming final (when confirming is on)
// and closes the connection. It is safe to call once, after Run returned.
func (s *Stream) Close(final cdccleaner.LSN) error {
	err := s.sendStatus(final, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cerr := s.conn.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// quoteLiteral quotes s for a replication command (START_REPLICATION's
// options), whose grammar knows only '...' with doubled quotes; the names
// it quotes are validated as [a-z0-9_].
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
