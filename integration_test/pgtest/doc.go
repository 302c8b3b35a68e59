// Package pgtest starts a throwaway PostgreSQL cluster with wal_level=logical for integration tests.
//
// A test package starts one cluster from TestMain and gives every test its
// own database:
//
//	var cluster *pgtest.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, &cluster)) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		_, url := cluster.NewDatabase(t)
//		pgtest.Exec(t, url, `CREATE TABLE photo (id int PRIMARY KEY, image text)`)
//	}
//
// The cluster runs from a temporary directory on a free loopback port, as the
// postgres OS user when the tests run as root. CDC_TEST_DATABASE_URL points
// the tests at an existing server instead. When the PostgreSQL server
// binaries are missing the tests are skipped, unless CI is set: then they
// fail with a message that says what to install.
//
// The server binaries (initdb, pg_ctl, postgres) are found on PATH, else in
// the highest version under /usr/lib/postgresql/*/bin. CDC_TEST_PG_BIN names
// a directory to take them from instead, to test another major version:
//
//	CDC_TEST_PG_BIN=$(scripts/pg-fetch 13) go test ./integration_test/
//
// Those binaries are used and no others: a directory that lacks one of them,
// or that the postgres OS user cannot reach, fails the tests even when CI is
// unset. Client tools such as pg_recvlogical (Cluster.ClientTool) are looked
// for beside the server binaries, then on PATH and in /usr/lib/postgresql,
// so they may be of another major than the server. make test-matrix runs the
// suite against every major from 13 to 18 this way.
package pgtest
