// Package deleter holds what every storage backend shares beyond the
// contract: RunPurger, which purges a cdccleaner.Trasher's trash on a
// schedule, CheckRestore, the checks every Restore makes before it touches
// anything, and CheckPrefix, the same for ListPrefix and PruneDirs.
//
// The storages are laid out as follows:
//
//   - the root package cdccleaner holds the contract: Storage, Lister,
//     PrefixLister, DirPruner, Statter, Trasher and Restorer,
//     ValidatePath, the permanent errors
//     and their reasons. Consumers (pipeline, scan) import only that;
//   - deleter/local is the storage on a local directory, confined to its
//     root through os.Root;
//   - deleter/s3 is the storage on a prefix of an S3 bucket, and the only
//     backend that links the AWS SDK;
//   - deleter/deletertest is the contract every storage passes, run by each
//     backend's tests against its own fixture;
//   - deleter/s3test is an S3-compatible server for tests (gofakes3
//     in-process, with fault injection, or an external endpoint).
//
// Outside tests, only the wiring in cmd/cdc-cleaner imports a backend.
package deleter
