package integration_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// privilegeSchema has a column of each kind the cleaner reads (text, json,
// text[]), a table in a schema other than public, a protect table, and
// columns nobody watches, which the least-privilege role must not read.
const privilegeSchema = photoSchema + `
CREATE TABLE blog_post (id serial PRIMARY KEY, cover text, body text);
CREATE TABLE legacy_upload (id serial PRIMARY KEY, file text, secret text);
CREATE TABLE document (id int PRIMARY KEY, title text, attachments json);
CREATE SCHEMA media;
CREATE TABLE media.album (id int PRIMARY KEY, photos text[]);
CREATE INDEX ON media.album USING gin (photos);`

const privilegeWatch = photoWatch + `
  - table: blog_post
    columns: [cover]
    storage: media
  - table: document
    columns: [attachments]
    json_path: "files[*].path"
    storage: media
  - table: media.album
    columns: [photos]
    storage: media
protect:
  - table: legacy_upload
    columns: [file]
    storage: media`

// rolePassword is set on every test role; no output may show it.
const rolePassword = "role-pw-never-shown"

// testRole returns a role name unique in the cluster (roles are
// cluster-wide) and drops the role when the test ends, before its database
// is dropped: first what it owns and was granted in e's database.
func testRole(t *testing.T, e *env) string {
	t.Helper()
	var super bool
	if err := e.conn().QueryRow(context.Background(), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("setup --role creates a role WITH REPLICATION, which needs a superuser; the test server's user is not one")
	}
	role := "r_" + e.db
	dropRoleAtEnd(t, e, role)
	return role
}

// dropRoleAtEnd drops role, if it exists, when the test ends, before its
// database is dropped: first what it owns and was granted there.
func dropRoleAtEnd(t *testing.T, e *env, role string) {
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, e.url)
		if err != nil {
			t.Errorf("connect to drop role %s: %v", role, err)
			return
		}
		defer c.Close(ctx)
		var exists bool
		if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil || !exists {
			return
		}
		id := pgx.Identifier{role}.Sanitize()
		if _, err := c.Exec(ctx, "REASSIGN OWNED BY "+id+" TO current_user; DROP OWNED BY "+id+"; DROP ROLE "+id); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
}

// asRole returns a copy of e whose configuration logs in as role (with
// rolePassword, which the throwaway cluster's trust authentication ignores
// and an external server checks).
func asRole(t *testing.T, e *env, role string) *env {
	t.Helper()
	e.exec("ALTER ROLE " + pgx.Identifier{role}.Sanitize() + " PASSWORD '" + rolePassword + "'")
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, rolePassword)
	lines := strings.Split(readFile(t, e.cfgPath), "\n")
	replaced := false
	for i, l := range lines {
		if strings.HasPrefix(l, "  url: ") {
			lines[i] = "  url: " + u.String()
			replaced = true
		}
	}
	if !replaced {
		t.Fatalf("no postgres.url line in %s", e.cfgPath)
	}
	re := *e
	re.url = u.String()
	re.cfgPath = filepath.Join(e.dir, "cdc-cleaner-"+role+".yaml")
	if err := os.WriteFile(re.cfgPath, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return &re
}

// noSecrets fails the test when out shows a password.
func noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, pw := range []string{testPassword, rolePassword} {
		if strings.Contains(out, pw) {
			t.Errorf("%s shows a password:\n%s", what, out)
		}
	}
}

// TestPrivilegeRoleRunsEveryScenario: a role made by setup --role, with
// REPLICATION and SELECT on the configured columns only, runs the cleaner
// through updates, deletes, rollbacks, shared paths (same table, other
// table, protect column), a hostile path recorded in failed_deletions, a
// json column (through cdc_cleaner.try_jsonb), an array column in another
// schema and a logical message; status and check work as that role; check
// names the GRANT of each privilege taken away; run refuses a role without
// REPLICATION.
func TestPrivilegeRoleRunsEveryScenario(t *testing.T) {
	t.Parallel()
	admin := newEnv(t, envOptions{schema: privilegeSchema, watch: privilegeWatch, media: "    messages: true"})
	role := testRole(t, admin)
	who := `"` + role + `"`
	out, code := admin.cli("setup", "--role", role)
	if code != 0 || !strings.Contains(out, "ALTER ROLE "+who+" PASSWORD") {
		t.Fatalf("setup --role: exit %d, want 0 and advice to set a password:\n%s", code, out)
	}
	e := asRole(t, admin, role)

	e.put("u/old.jpg", "u/new.jpg", "d/img.jpg", "d/thumb.jpg", "rb/keep.jpg", "rb/savepoint.jpg",
		"s/same.jpg", "s/other.jpg", "s/protected.jpg", "j/a.pdf", "j/b.pdf", "a/1.jpg", "a/2.jpg", "m/msg.jpg")
	secret := filepath.Join(e.outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	admin.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES
		(1, 'u/old.jpg', ''), (2, 'd/img.jpg', 'd/thumb.jpg'), (3, 'rb/keep.jpg', 'rb/savepoint.jpg'),
		(4, 's/same.jpg', ''), (5, 's/same.jpg', ''), (6, 's/other.jpg', ''), (7, 's/protected.jpg', ''),
		(8, '../outside/secret.txt', '')`)
	admin.exec(`INSERT INTO blog_post (cover) VALUES ('s/other.jpg')`)
	admin.exec(`INSERT INTO legacy_upload (file, secret) VALUES ('s/protected.jpg', 'not for the cleaner')`)
	admin.exec(`INSERT INTO document VALUES (1, 't', '{"files":[{"path":"j/a.pdf"},{"path":"j/b.pdf"}]}')`)
	admin.exec(`INSERT INTO media.album VALUES (1, '{a/1.jpg,a/2.jpg}')`)

	p := e.start()
	admin.exec(`UPDATE gallery_photo SET image = 'u/new.jpg' WHERE id = 1`)
	admin.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	admin.exec(`BEGIN; DELETE FROM gallery_photo WHERE id = 3; ROLLBACK`)
	admin.exec(`BEGIN; UPDATE gallery_photo SET title = 'x' WHERE id = 3;
		SAVEPOINT s; UPDATE gallery_photo SET thumbnail = '' WHERE id = 3; ROLLBACK TO SAVEPOINT s; COMMIT`)
	admin.exec(`DELETE FROM gallery_photo WHERE id IN (4, 6, 7, 8)`)
	admin.exec(`UPDATE document SET attachments = '{"files":[{"path":"j/b.pdf"}]}' WHERE id = 1`)
	admin.exec(`UPDATE media.album SET photos = '{a/2.jpg}' WHERE id = 1`)
	admin.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'cdc_cleaner', '{"storage":"media","path":"m/msg.jpg"}'); COMMIT`)
	e.settle()
	kept := []string{"u/new.jpg", "rb/keep.jpg", "rb/savepoint.jpg", "s/same.jpg", "s/other.jpg", "s/protected.jpg", "j/b.pdf", "a/2.jpg"}
	gone := []string{"u/old.jpg", "d/img.jpg", "d/thumb.jpg", "j/a.pdf", "a/1.jpg", "m/msg.jpg"}
	if cluster.Version() < 140000 {
		// No logical decoding messages before 14 (TestMessagesNeedPostgres14).
		kept, gone = append(kept, "m/msg.jpg"), gone[:len(gone)-1]
	}
	e.expect(kept, gone)
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Errorf("file outside the root was touched: %q, %v", b, err)
	}
	if f := admin.failed(); len(f) != 1 || f["../outside/secret.txt"] != "rejected_path" {
		t.Errorf("failed_deletions = %v, want only the hostile path as rejected_path", f)
	}
	if strings.Contains(p.Logs(), "permission denied") {
		t.Errorf("run as %s logged a permission error:\n%s", role, p.Logs())
	}

	// status reads the ledger as the role; check finds nothing missing.
	out, code = e.cli("status")
	noSecrets(t, "status", out)
	if code != 0 || !strings.Contains(out, "1 in total") {
		t.Errorf("status as %s: exit %d, want 0 and 1 failed deletion:\n%s", role, code, out)
	}
	out, code = e.cli("check")
	noSecrets(t, "check", out)
	if code != 0 || !strings.Contains(out, "role "+who+" has the privileges run needs") || !strings.Contains(out, "0 problems") {
		t.Errorf("check as %s: exit %d, want 0:\n%s", role, code, out)
	}

	// Least privilege: the columns nobody watches stay unreadable.
	ctx := context.Background()
	rc, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	for _, q := range []string{"SELECT title FROM gallery_photo", "SELECT secret FROM legacy_upload", "SELECT * FROM blog_post",
		"DELETE FROM cdc_cleaner.failed_deletions", "CREATE TABLE media.x (i int)"} {
		_, err := rc.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as %s: %v, want permission denied", q, role, err)
		}
	}

	// Each privilege taken away is named with its GRANT.
	admin.exec(`REVOKE SELECT (thumbnail) ON gallery_photo FROM ` + who + `;
		REVOKE USAGE ON SCHEMA media FROM ` + who + `;
		REVOKE INSERT ON cdc_cleaner.failed_deletions FROM ` + who)
	out, code = e.cli("check")
	for _, want := range []string{
		`watch[0].columns[1]: role ` + who + ` may not read column "thumbnail" of "public"."gallery_photo"`,
		`GRANT SELECT ("thumbnail") ON "public"."gallery_photo" TO ` + who,
		`watch[3].table: role ` + who + ` may not use schema "media"`,
		`GRANT USAGE ON SCHEMA "media" TO ` + who,
		`GRANT INSERT ON cdc_cleaner.failed_deletions TO ` + who,
		"cdc-cleaner setup --role " + role,
		"3 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check after REVOKE lacks %q", want)
		}
	}
	if code != 1 || t.Failed() {
		t.Errorf("check after REVOKE: exit %d, want 1:\n%s", code, out)
	}
	// setup --role again restores them (and changes nothing else).
	if out, code = admin.cli("setup", "--role", role); code != 0 {
		t.Fatalf("second setup --role: exit %d:\n%s", code, out)
	}
	if out, code = e.cli("check"); code != 0 {
		t.Errorf("check after the second setup --role: exit %d, want 0:\n%s", code, out)
	}

	// Without REPLICATION, run refuses to start and says why.
	if code := p.stop(); code != 0 {
		t.Errorf("run as %s stopped with exit %d", role, code)
	}
	admin.exec("ALTER ROLE " + who + " NOREPLICATION")
	out, code = e.cli("run")
	noSecrets(t, "run", out)
	if code != 2 || !strings.Contains(out, "neither REPLICATION nor SUPERUSER") || !strings.Contains(out, "ALTER ROLE "+who+" WITH REPLICATION") {
		t.Errorf("run without REPLICATION: exit %d, want 2 naming the missing attribute:\n%s", code, out)
	}
}

// TestSetupPrintWithRoleMatchesSetup: what setup --print --role prints,
// applied as a migration tool would (everything but the slot in one
// transaction, then the slot on its own; twice, since it must be
// idempotent, then once more with psql when it is installed) gives the same
// database as setup --role: replica identity, publication, event trigger,
// slot, the cleaner's objects, and the role's attributes and privileges.
func TestSetupPrintWithRoleMatchesSetup(t *testing.T) {
	t.Parallel()
	// A partitioned watched table: setup installs the event trigger.
	opts := envOptions{schema: privilegeSchema + `
CREATE TABLE media.clip (id int, at date, file text) PARTITION BY RANGE (at);
CREATE TABLE media.clip_2026 PARTITION OF media.clip FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');`,
		watch: strings.Replace(privilegeWatch, "protect:", `  - table: media.clip
    columns: [file]
    storage: media
protect:`, 1), noSetup: true}
	viaSetup := newEnv(t, opts)
	viaPrint := newEnv(t, opts)
	roleSetup := testRole(t, viaSetup)
	rolePrint := testRole(t, viaPrint)

	if out, code := viaSetup.cli("setup", "--role", roleSetup); code != 0 {
		t.Fatalf("setup --role: exit %d:\n%s", code, out)
	}
	script, code := viaPrint.cli("setup", "--print", "--role", rolePrint)
	if code != 0 {
		t.Fatalf("setup --print --role: exit %d:\n%s", code, script)
	}
	who := `"` + rolePrint + `"`
	for _, want := range []string{
		`CREATE ROLE ` + who + ` WITH LOGIN;`,
		`ALTER ROLE ` + who + ` WITH REPLICATION;`,
		`GRANT USAGE ON SCHEMA "public", "media", cdc_cleaner TO ` + who + `;`,
		`GRANT SELECT ("image", "thumbnail") ON TABLE "public"."gallery_photo" TO ` + who + `;`,
		`GRANT SELECT ("cover") ON TABLE "public"."blog_post" TO ` + who + `;`,
		`GRANT SELECT ("attachments") ON TABLE "public"."document" TO ` + who + `;`,
		`GRANT SELECT ("photos") ON TABLE "media"."album" TO ` + who + `;`,
		`GRANT SELECT ("file") ON TABLE "public"."legacy_upload" TO ` + who + `;`,
		`GRANT SELECT, INSERT ON TABLE cdc_cleaner.failed_deletions TO ` + who + `;`,
		`GRANT USAGE ON SEQUENCE cdc_cleaner.failed_deletions_id_seq TO ` + who + `;`,
		`GRANT EXECUTE ON FUNCTION cdc_cleaner.try_jsonb(json) TO ` + who + `;`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("setup --print --role lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("script:\n%s", script)
	}
	const slotMarker = "-- the logical replication slot"
	i := strings.Index(script, slotMarker)
	if i < 0 {
		t.Fatalf("no slot statement in the script:\n%s", script)
	}
	body, slot := script[:i], script[i:]
	if strings.Contains(slot, "GRANT") || strings.Contains(slot, "CREATE") {
		t.Fatalf("the slot statement is not last:\n%s", slot)
	}
	ctx := context.Background()
	c := viaPrint.conn()
	for round := 1; round <= 2; round++ {
		// Without arguments pgx sends the whole text in one message: one
		// implicit transaction, as a migration tool runs a file.
		if _, err := c.Exec(ctx, body); err != nil {
			t.Fatalf("apply the printed script (round %d): %v", round, err)
		}
		if _, err := c.Exec(ctx, slot); err != nil {
			t.Fatalf("apply the printed slot statement (round %d): %v", round, err)
		}
	}
	if psql, err := exec.LookPath("psql"); err == nil {
		path := filepath.Join(t.TempDir(), "setup.sql")
		if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", viaPrint.url, "-f", path)
		for _, kv := range cleanEnv() {
			if !strings.HasPrefix(kv, "PG") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql -f of the printed script: %v\n%s", err, out)
		}
	}

	a, b := dbState(t, viaSetup, roleSetup), dbState(t, viaPrint, rolePrint)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("setup --role and the printed script differ:\n--- setup:\n%s\n--- printed:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for _, want := range []string{"grant public.gallery_photo.image SELECT", "grant cdc_cleaner.failed_deletions INSERT",
		"grant schema media USAGE", "role login=t replication=t super=f createdb=f createrole=f bypassrls=f", "event trigger ddl_command_end O"} {
		if !slicesContains(b, want) {
			t.Errorf("state lacks %q:\n%s", want, strings.Join(b, "\n"))
		}
	}
	for _, l := range b {
		if strings.Contains(l, "gallery_photo.title") || strings.Contains(l, "legacy_upload.secret") {
			t.Errorf("the role was granted an unwatched column: %s", l)
		}
	}
	// The role the printed script made is enough for check.
	if out, code := asRole(t, viaPrint, rolePrint).cli("check"); code != 0 {
		t.Errorf("check as the role of the printed script: exit %d:\n%s", code, out)
	}
}

func slicesContains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// dbState describes what setup made in e's database, without the names that
// differ between databases (slot, publication, role).
func dbState(t *testing.T, e *env, role string) []string {
	t.Helper()
	rows, err := e.conn().Query(context.Background(), `
WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1::text),
rel AS (SELECT c.oid, c.relkind, c.relreplident, c.relacl, format('%I.%I', n.nspname, c.relname) AS name, n.nspname
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'media', 'cdc_cleaner'))
SELECT format('replica identity %s %s', name, relreplident) FROM rel WHERE relkind IN ('r', 'p')
UNION ALL SELECT format('publication %s.%s', schemaname, tablename) FROM pg_publication_tables WHERE pubname = $2::text
UNION ALL SELECT format('publication publish insert=%s update=%s delete=%s truncate=%s via_root=%s', pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot)
	FROM pg_publication WHERE pubname = $2::text
UNION ALL SELECT 'slot ' || plugin FROM pg_replication_slots WHERE slot_name = $3::text
UNION ALL SELECT format('event trigger %s %s', e.evtevent, e.evtenabled)
	FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'cdc_cleaner'
UNION ALL SELECT format('object %s %s', relkind, name) FROM rel WHERE nspname = 'cdc_cleaner'
UNION ALL SELECT format('function %I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
	FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'cdc_cleaner'
UNION ALL SELECT format('role login=%s replication=%s super=%s createdb=%s createrole=%s bypassrls=%s',
		rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls)
	FROM pg_roles WHERE rolname = $1::text
UNION ALL SELECT 'member of ' || g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid, r WHERE m.member = r.oid
UNION ALL SELECT format('grant %s %s', rel.name, a.privilege_type) FROM rel, aclexplode(rel.relacl) a, r WHERE a.grantee = r.oid
UNION ALL SELECT format('grant %s.%s %s', rel.name, att.attname, a.privilege_type)
	FROM rel JOIN pg_attribute att ON att.attrelid = rel.oid, aclexplode(att.attacl) a, r WHERE a.grantee = r.oid
UNION ALL SELECT format('grant schema %s %s', n.nspname, a.privilege_type) FROM pg_namespace n, aclexplode(n.nspacl) a, r WHERE a.grantee = r.oid
UNION ALL SELECT format('grant function %s %s', p.proname, a.privilege_type) FROM pg_proc p, aclexplode(p.proacl) a, r WHERE a.grantee = r.oid
UNION ALL SELECT format('grant database %s', a.privilege_type)
	FROM pg_database d, aclexplode(d.datacl) a, r WHERE d.datname = current_database() AND a.grantee = r.oid
ORDER BY 1`, role, e.pub, e.slot)
	if err != nil {
		t.Fatal(err)
	}
	state, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for i := range state {
		state[i] = strings.ReplaceAll(strings.ReplaceAll(state[i], e.db, "DB"), e.pub, "PUB") // in the event trigger function's name
	}
	return state
}

// TestPrivilegeHardenedCatalog: an administrator may take from PUBLIC
// what check reads (SELECT on a catalog table, EXECUTE on a function, in
// this database). What check then cannot read is reported as not checked,
// naming the error; it never passes quietly nor turns into a false
// finding.
func TestPrivilegeHardenedCatalog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		revoke   string
		code     int
		want     []string
		unwanted string
	}{
		{name: "inheritance", revoke: "REVOKE SELECT ON pg_catalog.pg_inherits FROM PUBLIC", code: 0,
			want: []string{`warning  watch[0].table: could not check "public"."gallery_photo" for inheritance children`, "permission denied for table pg_inherits"}},
		{name: "current database", revoke: "REVOKE EXECUTE ON FUNCTION pg_catalog.current_database() FROM PUBLIC", code: 1,
			want:     []string{`FAIL     postgres.slot: could not check that slot`, "belongs to this database", "permission denied for function current_database"},
			unwanted: "belongs to database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			admin := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
			role := testRole(t, admin)
			if out, code := admin.cli("setup", "--role", role); code != 0 {
				t.Fatalf("setup --role: exit %d:\n%s", code, out)
			}
			admin.exec(tt.revoke)
			out, code := asRole(t, admin, role).cli("check")
			if code != tt.code {
				t.Errorf("check exited %d, want %d", code, tt.code)
			}
			wantContains(t, "check", out, tt.want...)
			if tt.unwanted != "" && strings.Contains(out, tt.unwanted) {
				t.Errorf("check reports what it could not read as a fact (%q)", tt.unwanted)
			}
			if t.Failed() {
				t.Logf("check:\n%s", out)
			}
		})
	}
}
