package replication

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-cleaner/cdc-cleaner/internal/periodic"
)

// LagMonitor reports how much WAL the slot makes the server retain, as the
// server sees it (current WAL position minus the slot's restart_lsn), and
// warns when it passes a threshold: that WAL fills the server's disk if the
// cleaner falls behind or stops.
type LagMonitor struct {
	Pool      *pgxpool.Pool
	Slot      string
	Interval  time.Duration
	WarnAbove uint64              // bytes; 0 disables the warning
	Set       func(bytes float64) // e.g. a gauge's Set
	Log       zerolog.Logger
}

// lagSQL reads the WAL the slot retains. On a standby the current position
// is the last received one.
const lagSQL = `SELECT pg_wal_lsn_diff(
	CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
	restart_lsn)::bigint
FROM pg_replication_slots WHERE slot_name = $1`

// Run measures every Interval until ctx ends; it then returns nil. Query
// errors are logged (at most once a minute) and retried.
func (m *LagMonitor) Run(ctx context.Context) error {
	interval := m.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	st := lagState{errs: periodic.Throttle{Every: time.Minute}, warns: periodic.Throttle{Every: 10 * time.Minute}}
	periodic.Run(ctx, 0, interval, func(ctx context.Context) { m.measure(ctx, &st) })
	return nil
}

// lagState is what a LagMonitor remembers between measurements.
type lagState struct {
	errs, warns periodic.Throttle
	above       bool // the last measurement was above WarnAbove
}

func (m *LagMonitor) measure(ctx context.Context, st *lagState) {
	var lag *int64
	err := m.Pool.QueryRow(ctx, lagSQL, m.Slot).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		err = errors.New("slot not found")
	}
	switch {
	case err != nil:
		if ctx.Err() == nil && st.errs.Allow() {
			m.Log.Warn().Err(err).Str("slot", m.Slot).Msg("measure the WAL the slot retains")
		}
		return
	case lag == nil:
		return // no restart_lsn yet
	}
	m.Set(float64(*lag))
	switch {
	case m.WarnAbove > 0 && uint64(max(*lag, 0)) > m.WarnAbove:
		if !st.above {
			st.warns.Reset() // warn at once on crossing
		}
		if st.warns.Allow() {
			m.Log.Warn().Str("slot", m.Slot).Int64("retained_bytes", *lag).Uint64("max_lag_warn", m.WarnAbove).
				Msg("the slot retains more WAL than postgres.max_lag_warn: the cleaner is behind (or stuck on a transaction); the database server keeps this WAL on disk until it catches up")
		}
		st.above = true
	case st.above:
		m.Log.Info().Str("slot", m.Slot).Int64("retained_bytes", *lag).Msg("retained WAL is below postgres.max_lag_warn again")
		st.above = false
	}
}
