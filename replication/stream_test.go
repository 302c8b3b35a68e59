package replication

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestServerMajor(t *testing.T) {
	for in, want := range map[string]int{
		"15.18 (Debian 15.18-0+deb12u1)": 15,
		"14.2":                           14,
		"17beta1":                        17,
		"13.0":                           13,
		"":                               0,
		"devel":                          0,
	} {
		if got := serverMajor(in); got != want {
			t.Errorf("serverMajor(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestClassifyStartError(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		pid   int
		fatal bool
	}{
		{"in use", &pgconn.PgError{Code: "55006", Message: `replication slot "s" is active for PID 4242`}, 4242, false},
		{"missing", &pgconn.PgError{Code: "42704", Message: `replication slot "s" does not exist`}, 0, true},
		{"invalidated", &pgconn.PgError{Code: "55000", Message: `can no longer get changes from replication slot "s"`}, 0, true},
		{"other", errors.New("connection reset"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyStartError("s", tt.err)
			pid, inUse := IsSlotInUse(err)
			if inUse != (tt.pid != 0) || pid != tt.pid {
				t.Errorf("IsSlotInUse = %d, %v; want %d", pid, inUse, tt.pid)
			}
			if IsFatal(err) != tt.fatal {
				t.Errorf("IsFatal = %v, want %v (err %v)", IsFatal(err), tt.fatal, err)
			}
		})
	}
}
