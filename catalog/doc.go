// Package catalog reads from the PostgreSQL catalog what the cleaner needs
// to know of its columns: the kind of a column type (TypeKinds), the
// configured columns as they are called and typed now (Resolver), and what
// became of a column a Relation message lacks (MissingColumnHint).
//
// It stands apart from provision/ because the running cleaner calls it on
// its hot path: the reference check resolves its columns before every
// check and the decoder looks up the type of a column retyped while
// running. Those need only catalog reads, not the configuration, DDL and
// grants of provisioning, which uses this package too (Inspect classifies
// the watched columns with TypeKinds).
package catalog
