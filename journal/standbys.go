package journal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Standbys waits until the physical standbys that a failover may promote
// have the journal's newest entries. Journal entries are rows: a standby
// has one once it received the WAL that wrote it. A removal whose entry
// the promoted standby lacks is a file in the trash that no journal knows
// of, so a row referencing its path again would not bring it back
// (promise 7). The standbys are those of synchronized_standby_slots
// (PostgreSQL 17 and later), which make the primary send the cleaner only
// what they received: with it, the entry reaches them before the file
// moves, as the change reached them before the cleaner saw it.
type Standbys struct {
	pool *pgxpool.Pool
}

// standbySlotsSQL is synchronized_standby_slots, "" when unset or
// unknown (before PostgreSQL 17).
const standbySlotsSQL = `coalesce(current_setting('synchronized_standby_slots', true), '')`

// NewStandbys returns a Standbys on pool.
func NewStandbys(pool *pgxpool.Pool) *Standbys { return &Standbys{pool: pool} }

// WaitWritten waits until every physical slot that
// synchronized_standby_slots names has received (restart_lsn, which the
// standby's feedback moves) the WAL inserted so far, so everything
// committed before the call: the entries a caller just wrote. The setting
// is read each time, so a standby taken out of it (or added) counts from
// the next call on. A missing or inactive slot is waited for, as
// PostgreSQL's own walsender waits for it: warn says so, every 10 seconds.
// Without the setting (or before PostgreSQL 17) it returns after that one
// query: a round trip per batch of removals, which make bench's drains
// did not show (big-transaction ratio 2.25 with it, 2.26 before).
func (s *Standbys) WaitWritten(ctx context.Context, warn func(names []string, waited time.Duration)) error {
	var lsn, setting string
	// The insert position, not the flush position: it covers the
	// caller's commit whatever synchronous_commit is, and a standby
	// receives WAL only once it is flushed.
	err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, `+standbySlotsSQL).Scan(&lsn, &setting)
	if err != nil {
		return fmt.Errorf("read the WAL position and synchronized_standby_slots: %w", err)
	}
	names := SlotNames(setting)
	if len(names) == 0 {
		return nil
	}
	start := time.Now()
	pause, warned := time.Millisecond, time.Duration(0)
	for {
		var received int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1) AND slot_type = 'physical' AND restart_lsn >= $2::pg_lsn`, names, lsn).Scan(&received)
		if err != nil {
			return fmt.Errorf("check that standbys %v received %s: %w", names, lsn, err)
		}
		if received == len(names) {
			return nil
		}
		if waited := time.Since(start); waited-warned >= 10*time.Second {
			warn(names, waited)
			warned = waited
			// The setting may have changed meanwhile (a dead standby
			// taken out of it): go by it as it is now.
			if err := s.pool.QueryRow(ctx, `SELECT `+standbySlotsSQL).Scan(&setting); err != nil {
				return fmt.Errorf("read synchronized_standby_slots: %w", err)
			}
			if names = SlotNames(setting); len(names) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// SlotNames parses a list of slot names as PostgreSQL parses
// synchronized_standby_slots (a list of identifiers): separated by commas,
// spaces around them ignored, an unquoted name folded to lower case, a
// quoted one taken as written ("" for a quote), each name once.
func SlotNames(setting string) []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	var cur strings.Builder
	quoted, inQuotes := false, false
	for i := 0; i < len(setting); i++ {
		c := setting[i]
		switch {
		case inQuotes && c == '"' && i+1 < len(setting) && setting[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			if !inQuotes && !quoted {
				cur.Reset() // spaces before the opening quote
			}
			inQuotes, quoted = !inQuotes, true
		case inQuotes:
			cur.WriteByte(c)
		case c == ',':
			add(finishName(cur.String(), quoted))
			cur.Reset()
			quoted = false
		case quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			// spaces after the closing quote
		default:
			cur.WriteByte(c)
		}
	}
	add(finishName(cur.String(), quoted))
	return names
}

func finishName(n string, quoted bool) string {
	if quoted {
		return n
	}
	return strings.ToLower(strings.TrimSpace(n))
}
