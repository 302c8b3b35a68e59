// Package provision prepares the database for the cleaner and says whether
// it is ready: Inspect checks server settings, privileges, watched tables
// and columns, replica identity, publication, slot and the cleaner's own
// objects (check, and SchemaWatch again and again while run streams);
// SetupSQL and Setup create what is missing, RoleSQL grants a role what
// run needs, Teardown drops the slot and publication; Status is the slot
// report of status. It writes DDL and grants; it never streams (see
// replication/).
//
// Every finding carries a Code, so that callers (setup deciding what it
// fixes, tests) tell findings apart without reading their text. A query
// that fails inside Inspect is a finding naming what could not be checked,
// never a check that quietly passes.
package provision
