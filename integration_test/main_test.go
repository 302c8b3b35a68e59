// Package integration_test runs the real cdc-cleaner binary against a real
// PostgreSQL cluster started for the tests and real files on disk.
package integration_test

import (
	"os"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, &cluster)) }
