package cdccleaner

import "fmt"

// SlotLost explains a slot that setup recorded creating (at, from
// cdc_cleaner.slots) but that the server does not have. The record is a
// row, which a physical standby replicates, and the slot is not, unless it
// is a failover slot that the standby synchronizes (PostgreSQL 17 and
// later). So the likely cause is a failover, and a timeline above 1 says
// the server was promoted (timeline 0: unknown). version is
// server_version_num.
func SlotLost(slot, at string, timeline, version int) string {
	promoted := ""
	if timeline > 1 {
		promoted = fmt.Sprintf(" This server runs on timeline %d: it was promoted from a standby at some point (or restored from a backup).", timeline)
	}
	why := "PostgreSQL 17 and later keep a failover slot on standbys that synchronize it (postgres.failover_slot, README: Failover)"
	if version > 0 && version < 170000 {
		why = fmt.Sprintf("PostgreSQL %d has no failover slots: a slot never comes with a promoted standby", version/10000)
	}
	return fmt.Sprintf("replication slot %q does not exist here, although cdc-cleaner setup recorded creating it at %s (cdc_cleaner.slots): it was dropped, or it did not come with a failover.%s %s. "+
		"The changes committed between the slot's last confirmed position and now are in no stream: run cdc-cleaner setup (a new slot, from now on), then cdc-cleaner scan, which finds the files orphaned in between (README: Failover)",
		slot, at, promoted, why)
}

// SlotRecordedSQL reads when setup recorded creating slot in
// cdc_cleaner.slots (SlotLost's at), as text in UTC; no row when it did
// not. The slot is quoted into the statement, for connections that take
// simple queries only (a replication connection).
func SlotRecordedSQL(slot string) string {
	return `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') FROM cdc_cleaner.slots WHERE slot_name = ` + QuoteLiteral(slot)
}
