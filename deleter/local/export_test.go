package local

import "testing"

// Classify exposes classify to the external tests, which cannot provoke
// every errno on a real file system (permission bits do not stop root).
var Classify = classify

// RenameNoReplace is the real renameat2(RENAME_NOREPLACE) Restore uses.
var RenameNoReplace = renameNoReplace

// SetRenameNoReplace makes Restore call fn instead of renameat2 with
// RENAME_NOREPLACE until t ends. Tests that call it cannot be parallel.
func SetRenameNoReplace(t *testing.T, fn func(olddirfd int, oldname string, newdirfd int, newname string) error) {
	saved := renameNoReplace
	renameNoReplace = fn
	t.Cleanup(func() { renameNoReplace = saved })
}

// SetRenameat makes trashing call fn instead of renameat until t ends.
// Tests that call it cannot be parallel.
func SetRenameat(t *testing.T, fn func(olddirfd int, oldname string, newdirfd int, newname string) error) {
	saved := renameat
	renameat = fn
	t.Cleanup(func() { renameat = saved })
}

// Renameat is the real renameat trashing uses.
var Renameat = renameat

// SetLinkat makes trashing call fn instead of linkat until t ends. Tests
// that call it cannot be parallel.
func SetLinkat(t *testing.T, fn func(olddirfd int, oldname string, newdirfd int, newname string, flags int) error) {
	saved := linkat
	linkat = fn
	t.Cleanup(func() { linkat = saved })
}

// Linkat is the real linkat trashing uses.
var Linkat = linkat
