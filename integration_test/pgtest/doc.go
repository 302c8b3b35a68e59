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
package pgtest
