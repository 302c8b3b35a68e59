package cdccleaner

import (
	"context"
	"strings"
	"time"
)

// Events of the journal: what became of a stored file. The first three
// are removals, the others answers to a re-reference of a removed path.
const (
	// JournalTrashed: moved to the trash (JournalEntry.Location).
	JournalTrashed = "trashed"
	// JournalDeleted: deleted for good (trash off).
	JournalDeleted = "deleted"
	// JournalAbsent: already absent when the cleaner came to remove it.
	JournalAbsent = "absent"
	// JournalRestored: moved back from the trash because a committed row
	// referenced the path again.
	JournalRestored = "restored"
	// JournalOccupied: referenced again while a file existed at the path
	// (a new upload wins); nothing was restored.
	JournalOccupied = "occupied"
	// JournalDangling: referenced again and could not be restored; also
	// recorded in cdc_cleaner.failed_deletions.
	JournalDangling = "dangling"
)

// IsRemoval reports whether event is one of the removals.
func IsRemoval(event string) bool {
	return event == JournalTrashed || event == JournalDeleted || event == JournalAbsent
}

// JournalEntry is one event in the life of a stored path.
type JournalEntry struct {
	Storage string
	Path    string
	Event   string // one of the Journal* events
	// Location is where a trashed file went, relative to the storage
	// (JournalTrashed); empty otherwise.
	Location string
	// Source, Xid, CommitLSN and CommitTime name the change: for a
	// removal the transaction the path vanished in, for the others the
	// transaction that referenced it again, and the column it did so in.
	Source     string
	Xid        uint32
	CommitLSN  LSN
	CommitTime time.Time
	// Detail says more, for people (the error of a dangling reference).
	Detail string
	// At is when the entry was written; the journal fills it when read.
	At time.Time
}

// Journal keeps the history of removals and re-references (promise 7).
type Journal interface {
	// Write stores entries durably, in one statement, before returning
	// nil. Writing an entry again (a replay after a crash) is harmless.
	Write(ctx context.Context, entries []JournalEntry) error
	// Latest returns, for each paths[i] of storage, the entry written last
	// among those whose commit LSN is at or before upTo[i]. A path the
	// journal knows nothing of is not in the map.
	//
	// Written last, not of the highest LSN: what a file is now follows
	// what was done to it last. A removal replayed after a restart is
	// journaled again with its transaction's LSN, which can be lower than
	// that of a restore done before the restart; ordered by LSN, the
	// restore would hide the removal that came after it, and the file,
	// back in the trash, would never come back for the next row
	// referencing it (the fault suite found this). The bound still keeps
	// a re-reference from undoing a removal committed after it.
	Latest(ctx context.Context, storage string, paths []string, upTo []LSN) (map[string]JournalEntry, error)
}

// JournalHorizon is a Journal that can say how far recent removals went,
// so that a session can tell a replay of removals settled before (by a
// process that crashed, or on a primary that failed over) from new work.
type JournalHorizon interface {
	// Horizon returns the highest commit LSN among the entries written in
	// the last window, or 0 when there are none.
	Horizon(ctx context.Context, window time.Duration) (LSN, error)
}

// Reasons under which a dangling reference (JournalDangling) is recorded in
// cdc_cleaner.failed_deletions.
const (
	// DanglingDeleted: the file was deleted for good (trash off).
	DanglingDeleted = "dangling_deleted"
	// DanglingPurged: the trash no longer holds the file, which was
	// removed longer ago than the undo window (trash_retention).
	DanglingPurged = "dangling_purged"
	// DanglingMissing: the trash no longer holds the file although it was
	// removed within the undo window (removed there by someone else).
	DanglingMissing = "dangling_missing"
	// DanglingAbsent: the file was already absent when the cleaner came
	// to remove it.
	DanglingAbsent = "dangling_absent"
	// DanglingError: the storage refused to restore it for good.
	DanglingError = "dangling_error"
)

// DanglingReasons returns every reason a dangling reference is recorded
// under, for pre-declaring metric series.
func DanglingReasons() []string {
	return []string{DanglingDeleted, DanglingPurged, DanglingMissing, DanglingAbsent, DanglingError}
}

// RemovalIntent is the event and location a removal of path is journaled
// with before the storage carries it out: moved to trashPrefix+path, or,
// without trash ("") or for a path already in the trash, deleted.
func RemovalIntent(path, trashPrefix string) (event, location string) {
	if trashPrefix != "" && !strings.HasPrefix(path, trashPrefix) {
		return JournalTrashed, trashPrefix + path
	}
	return JournalDeleted, ""
}

// RemovalCorrection says how a removal journaled with RemovalIntent's
// location turned out otherwise, from the storage's result r: the event,
// location and detail of the entry that corrects it, or ok false when
// nothing needs correcting (done as journaled, or failed: retried or
// recorded elsewhere).
func RemovalCorrection(r Result, location string) (event, loc, detail string, ok bool) {
	switch {
	case r.Outcome != Deleted && r.Outcome != Absent:
		return "", "", "", false
	case r.Trash != "":
		return JournalTrashed, r.Trash, "", r.Trash != location
	case r.Outcome == Absent:
		return JournalAbsent, "", "already absent: nothing was moved", true
	case location != "":
		return JournalDeleted, "", "deleted, not trashed", true
	}
	return "", "", "", false
}
