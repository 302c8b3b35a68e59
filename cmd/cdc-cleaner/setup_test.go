package main

import (
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

// TestBlocksSetup: setup goes on past what it creates or fixes, and past
// what its own statements fail on with a clearer error; everything else
// stops it before it changes anything.
func TestBlocksSetup(t *testing.T) {
	tests := []struct {
		name  string
		p     provision.Finding
		block bool
	}{
		{"replica identity", provision.Finding{Code: provision.CodeReplicaIdentity, Field: "watch[0].table"}, false},
		{"cleaner schema", provision.Finding{Code: provision.CodeCleanerSchema}, false},
		{"publication", provision.Finding{Code: provision.CodePublication, Field: "postgres.publication"}, false},
		{"slot", provision.Finding{Code: provision.CodeSlot, Field: "postgres.slot"}, false},
		{"standby", provision.Finding{Code: provision.CodeStandby, Field: "postgres.url"}, false},
		{"no replication", provision.Finding{Code: provision.CodeNoReplication, Field: "postgres.url"}, false},
		{"setup fixes it", provision.Finding{Code: provision.CodeGeneral, SetupFixes: true}, false},
		{"general", provision.Finding{Code: provision.CodeGeneral, Field: "watch[0].columns[0]"}, true},
		{"a check that could not run", provision.Finding{Code: provision.CodeUnchecked, Field: "watch[0].table"}, true},
		{"privilege on a watched column", provision.Finding{Code: provision.CodeMissingPrivilege, Field: "watch[0].columns[0]"}, true},
		// The text does not decide: a message that mentions what setup
		// fixes does not make it go on.
		{"text is not the code", provision.Finding{Code: provision.CodeGeneral, Field: "watch[0].table", Message: "REPLICA IDENTITY cdc_cleaner."}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := blocksSetup(tt.p); got != tt.block {
				t.Errorf("blocksSetup(%+v) = %v, want %v", tt.p, got, tt.block)
			}
		})
	}
}
