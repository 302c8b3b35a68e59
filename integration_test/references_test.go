package integration_test

import (
	"testing"
)

// TestLogicalMessages: an application asks for a transactional delete of a
// file no column tracks with pg_logical_emit_message(true, 'cdc_cleaner',
// ...). It happens only if the transaction commits; a malformed request is
// recorded as failed; non-transactional messages and other prefixes are
// ignored.
func TestLogicalMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("msg/committed.jpg", "msg/rolled_back.jpg", "msg/not_transactional.jpg", "msg/other_prefix.jpg", "msg/referenced.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'msg/referenced.jpg')`)
	e.start()
	emit := func(transactional bool, prefix, storage, path string) string {
		return `SELECT pg_logical_emit_message(` + map[bool]string{true: "true", false: "false"}[transactional] + `, '` + prefix +
			`', json_build_object('storage', '` + storage + `', 'path', '` + path + `')::text)`
	}
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "media", "msg/committed.jpg") + `; COMMIT`)
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "media", "msg/rolled_back.jpg") + `; ROLLBACK`)
	e.exec(emit(false, "cdc_cleaner", "media", "msg/not_transactional.jpg"))
	e.exec(`BEGIN; ` + emit(true, "other", "media", "msg/other_prefix.jpg") + `; COMMIT`)
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "media", "msg/referenced.jpg") + `; COMMIT`)
	e.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'cdc_cleaner', 'please delete msg/x.jpg'); COMMIT`)
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "nosuchstorage", "msg/y.jpg") + `; COMMIT`)
	e.settle()
	e.expect([]string{"msg/rolled_back.jpg", "msg/not_transactional.jpg", "msg/other_prefix.jpg", "msg/referenced.jpg"},
		[]string{"msg/committed.jpg"})
	failed := e.failed()
	if failed["please delete msg/x.jpg"] != "bad_message" || failed["msg/y.jpg"] != "bad_message" {
		t.Errorf("failed_deletions %v, want both malformed requests as bad_message", failed)
	}
	if len(failed) != 2 {
		t.Errorf("failed_deletions has %d rows, want 2: %v", len(failed), failed)
	}
}
