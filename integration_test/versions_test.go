package integration_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// What depends on the server's major version (README: Supported
// PostgreSQL versions). The suite runs on any major from 13 on
// (CDC_TEST_PG_BIN, make test-matrix); these tests assert, on each, what
// that major does.

// messagesNeed14 is what check, setup and run say when a storage honours
// logical decoding messages on a server older than 14.
const messagesNeed14 = "does not send logical decoding messages to the cleaner (they need PostgreSQL 14)"

// TestMessagesNeedPostgres14: logical decoding messages reach a logical
// slot from PostgreSQL 14 on. On 13 a storage with messages: true gets a
// warning from setup, check and run, and a committed request deletes
// nothing; from 14 on there is no such warning and it deletes the file.
func TestMessagesNeedPostgres14(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, media: "    messages: true", noSetup: true})
	setupOut, code := e.cli("setup")
	if code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, setupOut)
	}
	checkOut, _ := e.cli("check")
	e.put("msg/requested.jpg")
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'cdc_cleaner', '{"storage": "media", "path": "msg/requested.jpg"}'); COMMIT`)
	e.settle()
	old := cluster.Version() < 140000
	for what, out := range map[string]string{"setup": setupOut, "check": checkOut, "run's log": p.Logs()} {
		if got := strings.Contains(out, messagesNeed14); got != old {
			t.Errorf("PostgreSQL %d: %s says %q: %v, want %v:\n%s", cluster.Version()/10000, what, messagesNeed14, got, old, out)
		}
	}
	if old {
		e.expect([]string{"msg/requested.jpg"}, nil)
	} else {
		e.expect(nil, []string{"msg/requested.jpg"})
	}
}

// TestFailoverSlot: from PostgreSQL 17 on, setup creates the slot as a
// failover slot (postgres.failover_slot, on by default; off makes an
// ordinary one) and check says what the standbys need; before 17 check
// says there are no failover slots.
func TestFailoverSlot(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		name := map[bool]string{true: "default", false: "off"}[on]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})
			if !on {
				e.env = append(e.env, "CDC_CLEANER_POSTGRES_FAILOVER_SLOT=false")
			}
			if out, code := e.cli("setup"); code != 0 {
				t.Fatalf("setup exited %d:\n%s", code, out)
			}
			out, code := e.cli("check")
			if code != 0 {
				t.Fatalf("check exited %d:\n%s", code, out)
			}
			if cluster.Version() < 170000 {
				want := "no standby streams from this server (PostgreSQL"
				if !strings.Contains(out, want) {
					t.Errorf("check on PostgreSQL %d does not say %q:\n%s", cluster.Version()/10000, want, out)
				}
				return
			}
			failover := pgtest.QueryString(t, e.url, `SELECT failover::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot)
			if want := map[bool]string{true: "true", false: "false"}[on]; failover != want {
				t.Errorf("slot's failover is %s, want %s", failover, want)
			}
			want := "is a failover slot, but no standby uses a physical replication slot"
			if !on {
				want = "is not a failover slot (postgres.failover_slot is false)"
			}
			if !strings.Contains(out, want) {
				t.Errorf("check does not say %q:\n%s", want, out)
			}
		})
	}
}

// TestSlotLostAfterFailover: a slot that setup recorded creating
// (cdc_cleaner.slots, a table a physical standby replicates) but that the
// server lacks is what a failover leaves on a server without failover
// slots. check and run say so, and what to do: setup, then scan.
func TestSlotLostAfterFailover(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
	wants := []string{"does not exist here, although cdc-cleaner setup recorded creating it at", "did not come with a failover", "run cdc-cleaner setup (a new slot, from now on), then cdc-cleaner scan"}
	out, code := e.cli("check")
	if code != 1 {
		t.Errorf("check exited %d, want 1:\n%s", code, out)
	}
	runOut, runCode := e.cli("run")
	if runCode == 0 {
		t.Errorf("run exited 0 without its slot:\n%s", runOut)
	}
	for what, got := range map[string]string{"check": out, "run": runOut} {
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s does not say %q:\n%s", what, w, got)
			}
		}
	}
	// As the message says: setup makes a new slot, and run streams.
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
}
