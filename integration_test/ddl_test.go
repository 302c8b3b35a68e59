package integration_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// appOwner creates a role that owns the application's tables, as a web
// application's database user does: LOGIN, no superuser, CREATE on schema
// public. It returns the role's name and a URL that logs in as it.
func appOwner(t *testing.T, e *env) (string, string) {
	t.Helper()
	testRole(t, e) // skips when the server's user cannot create roles
	role := "app_" + e.db
	id := pgx.Identifier{role}.Sanitize()
	e.exec("CREATE ROLE " + id + " LOGIN PASSWORD '" + rolePassword + "'")
	e.exec("GRANT CREATE ON SCHEMA public TO " + id)
	e.exec("GRANT TEMPORARY ON DATABASE " + pgx.Identifier{e.db}.Sanitize() + " TO " + id)
	dropRoleAtEnd(t, e, role)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, rolePassword)
	return role, u.String()
}

// ddlAs runs statements one by one on a connection of the application's
// role and fails the test for each that fails; it returns the warnings the
// server sent.
func ddlAs(t *testing.T, roleURL string, stmts ...string) []string {
	t.Helper()
	ctx := context.Background()
	var warnings []string
	cfg, err := pgx.ParseConfig(roleURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if n.Severity == "WARNING" {
			warnings = append(warnings, n.Message)
		}
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Errorf("the application's DDL failed after setup: %s: %v", s, err)
		}
	}
	return warnings
}

// TestApplicationDDLAfterSetup: after setup as a superuser, the role that
// owns the application's tables (not a superuser) can still run what a
// framework's migrations run: CREATE TABLE, CREATE TEMP TABLE, ALTER TABLE
// ADD COLUMN on a watched table, and, for a partitioned watched table,
// CREATE TABLE ... PARTITION OF and ATTACH PARTITION, which the event
// trigger gives REPLICA IDENTITY FULL. The trigger is installed only when a
// watched table is partitioned, and an error inside it (here: a partition
// the application's role does not own) is a warning, never an error in the
// application's statement.
func TestApplicationDDLAfterSetup(t *testing.T) {
	t.Parallel()

	t.Run("plain table", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{noSetup: true, watch: photoWatch})
		_, appURL := appOwner(t, e)
		ddlAs(t, appURL, photoSchema)
		if out, code := e.cli("setup"); code != 0 {
			t.Fatalf("setup: exit %d:\n%s", code, out)
		}
		if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_event_trigger WHERE evtname LIKE 'cdc_cleaner%'`); n != "0" {
			t.Errorf("setup installed %s event triggers for a configuration without a partitioned table, want none", n)
		}
		ddlAs(t, appURL,
			`ALTER TABLE gallery_photo ADD COLUMN caption text`,
			`CREATE TABLE blog_post (id serial PRIMARY KEY, cover text)`,
			`CREATE TEMP TABLE scratch (x int)`,
			`DROP TABLE scratch`,
			`ALTER TABLE blog_post ADD COLUMN body text`,
			`CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)`,
			`CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		)
	})

	t.Run("partitioned table", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{noSetup: true, watch: `watch:
  - table: public.upload
    columns: [file]
    storage: media`})
		app, appURL := appOwner(t, e)
		ddlAs(t, appURL,
			`CREATE TABLE upload (id int NOT NULL, at date NOT NULL, file text NOT NULL DEFAULT '', PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
			`CREATE TABLE upload_2025 PARTITION OF upload FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
		)
		if out, code := e.cli("setup"); code != 0 {
			t.Fatalf("setup: exit %d:\n%s", code, out)
		}
		trigger := pgQueryString(t, e, `SELECT coalesce(string_agg(evtname, ','), '') FROM pg_event_trigger WHERE evtname LIKE 'cdc_cleaner%'`)
		if trigger == "" {
			t.Fatalf("setup installed no event trigger for a partitioned watched table")
		}
		ddlAs(t, appURL,
			`CREATE TABLE blog_post (id serial PRIMARY KEY, cover text)`,
			`CREATE TEMP TABLE scratch (x int)`,
			`DROP TABLE scratch`,
			`ALTER TABLE upload ADD COLUMN caption text`,
			`CREATE TABLE upload_2026 PARTITION OF upload FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		)
		// A partition the application's role does not own, without
		// REPLICA IDENTITY FULL, under the watched table: the trigger
		// cannot fix it as that role. It is made with the trigger off.
		// (The application's ALTER TABLE ... ADD COLUMN on the parent
		// now fails by itself: it must own every partition.)
		e.exec(`ALTER EVENT TRIGGER ` + trigger + ` DISABLE`)
		e.exec(`CREATE TABLE upload_2024 (LIKE upload INCLUDING ALL)`)
		e.exec(`ALTER TABLE upload ATTACH PARTITION upload_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`)
		e.exec(`ALTER TABLE upload_2024 REPLICA IDENTITY DEFAULT`)
		e.exec(`ALTER EVENT TRIGGER ` + trigger + ` ENABLE`)

		// ATTACH PARTITION alters the watched table, whose partitions
		// the trigger then looks at, upload_2024 among them.
		warnings := ddlAs(t, appURL,
			`CREATE TABLE upload_2027 (LIKE upload)`,
			`ALTER TABLE upload ATTACH PARTITION upload_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')`,
		)
		for _, part := range []string{"upload_2026", "upload_2027"} {
			if got := pgQueryString(t, e, `SELECT relreplident::text FROM pg_class WHERE oid = $1::regclass`, part); got != "f" {
				t.Errorf("partition %s created by the application has replica identity %q, want f (FULL)", part, got)
			}
		}
		if !strings.Contains(strings.Join(warnings, "\n"), "upload_2024") {
			t.Errorf("the application's DDL got no warning about upload_2024, which the trigger could not fix as %s; warnings: %q", app, warnings)
		}
	})
}

func pgQueryString(t *testing.T, e *env, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := e.conn().QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// requireDjango fails the test in CI, and skips it elsewhere, when
// Debian's Django and psycopg2 are not importable by /usr/bin/python3.
func requireDjango(t *testing.T) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import django, psycopg2").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("Django is needed to run a real application's migrations (apt-get install python3-django python3-psycopg2): %v\n%s", err, out)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestDjangoMigrationsAfterSetup: a real Django project's migrations, run
// by the role that owns its tables (not a superuser) after setup ran as a
// superuser for a watched partitioned table (so the event trigger is
// installed): AddField (ALTER TABLE ADD COLUMN), CreateModel (CREATE
// TABLE) and a new partition all go through, and the partition gets
// REPLICA IDENTITY FULL.
func TestDjangoMigrationsAfterSetup(t *testing.T) {
	t.Parallel()
	requireDjango(t)
	e := newEnv(t, envOptions{noSetup: true, watch: `watch:
  - table: public.gallery_photo
    columns: [image]
    storage: media
  - table: public.gallery_upload
    columns: [file]
    storage: media`})
	_, appURL := appOwner(t, e)
	project := t.TempDir()
	if err := os.CopyFS(project, os.DirFS("testdata/django")); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(appURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	migrate := func(target string) {
		t.Helper()
		cmd := exec.Command("/usr/bin/python3", "manage.py", "migrate", "gallery", target, "--no-input")
		cmd.Dir = project
		cmd.Env = append(cleanEnv(), "PYTHONDONTWRITEBYTECODE=1", "PGHOST="+u.Hostname(), "PGPORT="+u.Port(),
			"PGDATABASE="+strings.TrimPrefix(u.Path, "/"), "PGUSER="+u.User.Username(), "PGPASSWORD="+pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("manage.py migrate gallery %s as the tables' owner: %v\n%s", target, err, out)
		}
	}
	migrate("0001")
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup: exit %d:\n%s", code, out)
	}
	if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_event_trigger WHERE evtname LIKE 'cdc_cleaner%'`); n != "1" {
		t.Fatalf("setup installed %s event triggers for a partitioned watched table, want 1", n)
	}
	migrate("0002")
	if got := pgQueryString(t, e, `SELECT relreplident::text FROM pg_class WHERE oid = 'gallery_upload_2026'::regclass`); got != "f" {
		t.Errorf("the partition Django's migration created has replica identity %q, want f (FULL)", got)
	}
	if out, code := e.cli("check"); code != 0 {
		t.Errorf("check after the migrations: exit %d:\n%s", code, out)
	}
}

// TestNonSuperuserSetupOfPartitionedTable: setup run by a role that owns
// the tables but is not a superuser (as on managed PostgreSQL) cannot
// install the event trigger. For a watched partitioned table without a
// primary key, a partition created later would then have no replica
// identity, and the application's UPDATE and DELETE on it would fail
// under the publication: setup refuses before publishing anything. With a
// primary key, it goes on with a warning, and the application's DML on a
// new partition works.
func TestNonSuperuserSetupOfPartitionedTable(t *testing.T) {
	t.Parallel()
	watch := `watch:
  - table: public.upload
    columns: [file]
    storage: media`
	for _, tt := range []struct {
		name   string
		key    string
		code   int
		output string
	}{
		{"without a primary key", "", 1, "has no primary key"},
		{"with a primary key", ", PRIMARY KEY (id, at)", 0, "cannot install the event trigger"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{noSetup: true, watch: watch})
			owner, ownerURL := appOwner(t, e)
			e.exec(`ALTER ROLE ` + pgx.Identifier{owner}.Sanitize() + ` REPLICATION`)
			e.exec(`GRANT CREATE ON DATABASE ` + pgx.Identifier{e.db}.Sanitize() + ` TO ` + pgx.Identifier{owner}.Sanitize())
			ddlAs(t, ownerURL,
				`CREATE TABLE upload (id int NOT NULL, at date NOT NULL, file text NOT NULL DEFAULT ''`+tt.key+`) PARTITION BY RANGE (at)`,
				`CREATE TABLE upload_2025 PARTITION OF upload FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`)
			admin := asRole(t, e, owner)
			out, code := admin.cli("setup")
			if code != tt.code || !strings.Contains(out, tt.output) {
				t.Fatalf("setup as the tables' owner: exit %d, want %d saying %q:\n%s", code, tt.code, tt.output, out)
			}
			published := pgQueryString(t, e, `SELECT count(*)::text FROM pg_publication WHERE pubname = $1`, e.pub)
			if code != 0 {
				if published != "0" {
					t.Errorf("setup refused but created the publication")
				}
				return
			}
			ddlAs(t, ownerURL,
				`CREATE TABLE upload_2026 PARTITION OF upload FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
				`INSERT INTO upload VALUES (1, '2026-02-01', 'a.jpg')`,
				`UPDATE upload SET file = 'b.jpg' WHERE id = 1`,
				`DELETE FROM upload WHERE id = 1`)
		})
	}
}
