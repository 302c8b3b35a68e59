package integration_test

import (
	"testing"
	"time"
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

// TestDeleteDelay: with delete_delay, a candidate waits until its commit
// time plus the delay and is checked again right before deletion: a path
// re-referenced during the delay is kept, one that is not is deleted after
// the delay; kill -9 during the delay loses nothing.
func TestDeleteDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, extra: "delete_delay: 4s"})
	e.put("dl/rereferenced.jpg", "dl/orphan.jpg", "dl/killed.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'dl/rereferenced.jpg'), (2, 'dl/orphan.jpg'), (3, 'dl/killed.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id IN (1, 2)`)
	time.Sleep(time.Second)
	// Well inside the delay: nothing is gone yet, and a re-upload points a
	// new row at the first file again.
	e.expect([]string{"dl/rereferenced.jpg", "dl/orphan.jpg"}, nil)
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (10, 'dl/rereferenced.jpg')`)
	e.settle()
	e.expect([]string{"dl/rereferenced.jpg"}, []string{"dl/orphan.jpg"})

	// kill -9 during the delay; the restarted cleaner deletes after it.
	e.exec(`DELETE FROM gallery_photo WHERE id = 3`)
	time.Sleep(time.Second)
	p.kill()
	e.expect([]string{"dl/killed.jpg"}, nil)
	e.start()
	e.settle()
	e.expect(nil, []string{"dl/killed.jpg"})
}
