// Package cdccleaner holds the few types every part of cdc-cleaner speaks: a
// file reference (storage + path), a candidate for deletion with the commit it
// came from, the outcome of deleting it, and the interfaces the pipeline needs
// from storages, reference checks and the failure ledger.
//
// It also holds the storage contract, what a consumer of a storage (pipeline,
// scan) relies on and every storage provides: Storage, Lister, Statter and
// Trasher; ValidatePath, the rule every path passes before a storage touches
// it; permanent errors and the failure reasons (Reason, IsPermanent); and the
// keep and exclude patterns (MatchPattern, ValidPattern).
//
// Implementations live in sub-packages and depend inward on this one:
// decoder/ produces candidates, deleter/local and deleter/s3 implement
// Storage (so only deleter/s3 links the AWS SDK), refcheck/ implements
// ReferenceChecker, ledger/ implements FailureRecorder, and pipeline/ joins
// them.
package cdccleaner
