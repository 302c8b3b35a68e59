// Package cdccleaner holds the few types every part of cdc-cleaner speaks: a
// file reference (storage + path), a candidate for deletion with the commit it
// came from, the outcome of deleting it, and the interfaces the pipeline needs
// from storages, reference checks and the failure ledger.
//
// Implementations live in sub-packages and depend inward on this one:
// decoder/ produces candidates, deleter/ implements Storage, refcheck/
// implements ReferenceChecker, and pipeline/ joins them.
package cdccleaner
