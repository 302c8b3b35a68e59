package pipeline

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/decoder"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

// capturedColumns are the watched columns of decoder's TestCapturedStream.
var capturedColumns = []cdccleaner.Column{
	{Schema: "Media Schema", Table: "PhotoTable", Name: "ImageFile", Storage: "media"},
	{Schema: "Media Schema", Table: "PhotoTable", Name: "big", Storage: "media"},
	{Schema: "Media Schema", Table: "PhotoTable", Name: "tags", Storage: "media"},
	{Schema: "Media Schema", Table: "PhotoTable", Name: "doc", Storage: "docs", JSONPath: cdccleaner.JSONPath{{Key: "files"}, {Each: true}, {Key: "path"}}},
}

// capturedStream reads ../decoder/testdata/mixed_case_stream.txt (see the
// README there) as replication messages, and returns the end LSN of each
// transaction's commit, in order: ends[0] is transaction 1's.
func capturedStream(t *testing.T) (msgs []replication.Message, ends []cdccleaner.LSN) {
	t.Helper()
	const name = "../decoder/testdata/mixed_case_stream.txt"
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "|")
		if len(parts) != 3 {
			t.Fatalf("%s: bad line %q", name, sc.Text())
		}
		lsn, err := cdccleaner.ParseLSN(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		data, err := hex.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, replication.Message{WALStart: lsn, Data: data})
		if data[0] == 'C' {
			// Commit: flags (1), commit LSN (8), end LSN (8), time (8).
			ends = append(ends, cdccleaner.LSN(binary.BigEndian.Uint64(data[10:18])))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ends) != 9 {
		t.Fatalf("%s: %d commits, want 9", name, len(ends))
	}
	return msgs, ends
}

// capturedCandidates are the candidates of the captured stream as
// "storage:path@column#txn", in stream order.
var capturedCandidates = []string{
	"media:a/one.jpg@ImageFile#3",
	"media:t/1.jpg@tags#5",
	"docs:j/1.pdf@doc#5",
	"media:a/été ✓.jpg@ImageFile#7",
	"media:small@big#7",
	"media:a/new.jpg@ImageFile#8",
}

func candidateString(c cdccleaner.Candidate) string {
	return fmt.Sprintf("%s:%s@%s#%d", c.Storage, c.Path, strings.TrimPrefix(c.Source, "Media Schema.PhotoTable."), c.Txn)
}

func newDecodePipeline(t *testing.T, batchSize int) (*Pipeline, *decoder.Decoder) {
	t.Helper()
	ev := &events{}
	p, err := New(Config{
		Columns: capturedColumns,
		Storages: map[string]cdccleaner.Storage{
			"media": &fakeStorage{ev: ev},
			"docs":  &fakeStorage{ev: ev},
		},
		Refs:      &fakeRefs{ev: ev},
		Failures:  &fakeRecorder{ev: ev},
		Logger:    zerolog.New(zerolog.TestWriter{T: t}),
		BatchSize: batchSize,
		RetryMin:  time.Millisecond,
		RetryMax:  5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, decoder.New(capturedColumns)
}

// runDecode runs p.decode over msgs, already queued and closed, and returns
// its result and every batch it sent. out is unbuffered; onFirst, when not
// nil, runs when the first batch is received, before it is consumed.
func runDecode(t *testing.T, p *Pipeline, dec *decoder.Decoder, tr *replication.Tracker, msgs []replication.Message, onFirst func()) ([]*batch, error) {
	t.Helper()
	in := make(chan replication.Message, len(msgs))
	for _, m := range msgs {
		in <- m
	}
	close(in)
	out := make(chan *batch)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.decode(ctx, dec, tr, newOrder(), in, out, nil) }()
	var got []*batch
	for b := range out {
		if len(got) == 0 && onFirst != nil {
			onFirst()
		}
		if len(b.cands) == 0 && len(b.failures) > 0 && b.failures[0].Reason == decoder.ReasonTruncated {
			// The captured stream's TRUNCATE, recorded (see
			// TestDecodeRecordsTruncate): settled here, as a worker would.
			for _, f := range b.failures {
				tr.Settled(f.Txn, 1)
			}
			continue
		}
		got = append(got, b)
	}
	if ctx.Err() != nil {
		t.Fatal("decode did not finish in time")
	}
	return got, <-done
}

// byStorage lists each storage's candidates, in the order they came, and
// checks that every batch holds candidates of its own storage only.
func byStorage(t *testing.T, batches []*batch) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, b := range batches {
		if len(b.cands) == 0 {
			t.Errorf("empty batch of storage %q", b.storage)
		}
		for _, c := range b.cands {
			if c.Storage != b.storage {
				t.Errorf("candidate %s in a batch of storage %q", c.Ref, b.storage)
			}
			out[b.storage] = append(out[b.storage], candidateString(c))
		}
	}
	return out
}

func filterStorage(storage string, cands []string) []string {
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, storage+":") {
			out = append(out, c)
		}
	}
	return out
}

func TestDecodeCapturedStream(t *testing.T) {
	msgs, ends := capturedStream(t)
	p, dec := newDecodePipeline(t, 0)
	tr := replication.NewTracker(0)

	var pendingAtFirst int
	var confirmedAtFirst cdccleaner.LSN
	batches, err := runDecode(t, p, dec, tr, msgs, func() {
		pendingAtFirst, confirmedAtFirst = tr.Pending(), tr.Confirmed()
	})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}

	// One batch per storage: every message was queued, so decode never ran
	// out of input before the end.
	if len(batches) != 2 {
		t.Errorf("%d batches, want 2 (one per storage)", len(batches))
	}
	got := byStorage(t, batches)
	for _, s := range []string{"media", "docs"} {
		if want := filterStorage(s, capturedCandidates); !slices.Equal(got[s], want) {
			t.Errorf("storage %s candidates:\n got %q\nwant %q", s, got[s], want)
		}
	}
	for _, b := range batches {
		for _, c := range b.cands {
			if c.CommitLSN == 0 || c.CommitTime.IsZero() {
				t.Errorf("candidate %s lacks its commit LSN or time: %+v", c.Ref, c)
			}
		}
	}

	// Before a worker saw anything, the transactions with candidates (3, 5,
	// 7, 8) and the TRUNCATE of 9, which is recorded, were registered and
	// pending; those without (1, 2) confirmed; 4 and 6 folded into the
	// pending ones before them.
	if pendingAtFirst != 5 {
		t.Errorf("Pending = %d when the first batch was received, want 5", pendingAtFirst)
	}
	if confirmedAtFirst != ends[1] {
		t.Errorf("Confirmed = %s when the first batch was received, want %s (end of transaction 2)", confirmedAtFirst, ends[1])
	}

	// Settling every candidate confirms the end of the stream, including
	// the folded transaction 9 behind the last one with candidates.
	for _, b := range batches {
		for _, c := range b.cands {
			if got := tr.Confirmed(); got >= ends[c.Txn-1] {
				t.Fatalf("Confirmed = %s before candidate %s of transaction %d (end %s) settled", got, c.Ref, c.Txn, ends[c.Txn-1])
			}
			tr.Settled(c.Txn, 1)
		}
	}
	if got := tr.Confirmed(); got != ends[8] {
		t.Errorf("Confirmed = %s after everything settled, want %s", got, ends[8])
	}
	if tr.Pending() != 0 {
		t.Errorf("Pending = %d after everything settled, want 0", tr.Pending())
	}

	m := p.cfg.Metrics
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"changes insert", testutil.ToFloat64(m.Changes.WithLabelValues("Media Schema.PhotoTable", "insert")), 2},
		{"changes update", testutil.ToFloat64(m.Changes.WithLabelValues("Media Schema.PhotoTable", "update")), 4},
		{"changes delete", testutil.ToFloat64(m.Changes.WithLabelValues("Media Schema.PhotoTable", "delete")), 1},
		{"candidates media", testutil.ToFloat64(m.Candidates.WithLabelValues("media")), 5},
		{"candidates docs", testutil.ToFloat64(m.Candidates.WithLabelValues("docs")), 1},
		{"truncates", testutil.ToFloat64(m.Truncates.WithLabelValues("Media Schema.PhotoTable")), 1},
	} {
		if c.got != c.want {
			t.Errorf("metric %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestDecodeRegistersBeforeSending feeds the stream one message at a time
// and settles each batch as soon as it arrives, as a fast worker would: the
// candidate's transaction must already be known to the tracker, or its
// settlement is lost and the slot never advances.
func TestDecodeRegistersBeforeSending(t *testing.T) {
	msgs, ends := capturedStream(t)
	p, dec := newDecodePipeline(t, 1)
	tr := replication.NewTracker(0)
	in := make(chan replication.Message)
	out := make(chan *batch)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.decode(ctx, dec, tr, newOrder(), in, out, nil) }()

	var got []string
	settle := func(b *batch) {
		t.Helper()
		for _, c := range b.cands {
			got = append(got, candidateString(c))
			if tr.Pending() == 0 {
				t.Errorf("candidate %s sent while no transaction is pending", c.Ref)
			}
			if conf := tr.Confirmed(); conf >= ends[c.Txn-1] {
				t.Errorf("Confirmed = %s before candidate %s of transaction %d settled", conf, c.Ref, c.Txn)
			}
			tr.Settled(c.Txn, 1)
		}
		for _, f := range b.failures {
			tr.Settled(f.Txn, 1)
		}
	}
	for _, m := range msgs {
		for sent := false; !sent; {
			select {
			case in <- m:
				sent = true
			case b := <-out:
				settle(b)
			case <-ctx.Done():
				t.Fatal("decode stopped reading")
			}
		}
	}
	close(in)
	for b := range out {
		settle(b)
	}
	if err := <-done; err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !slices.Equal(got, capturedCandidates) {
		t.Errorf("candidates:\n got %q\nwant %q", got, capturedCandidates)
	}
	if conf := tr.Confirmed(); conf != ends[8] {
		t.Errorf("Confirmed = %s, want %s: every candidate was settled", conf, ends[8])
	}
	if tr.Pending() != 0 {
		t.Errorf("Pending = %d, want 0", tr.Pending())
	}
}

func TestDecodeKeepalive(t *testing.T) {
	msgs, ends := capturedStream(t)
	// Transactions 1 and 2 have no candidates; transaction 3 starts at
	// message 7 and has one.
	const firstTwo = 7
	if msgs[firstTwo-1].Data[0] != 'C' {
		t.Fatal("captured stream changed: message 7 is not the commit of transaction 2")
	}
	keepalive := ends[8] + 1000

	t.Run("nothing pending: follows the server", func(t *testing.T) {
		p, dec := newDecodePipeline(t, 0)
		tr := replication.NewTracker(0)
		stream := append(slices.Clone(msgs[:firstTwo]), replication.Message{WALEnd: keepalive})
		batches, err := runDecode(t, p, dec, tr, stream, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(batches) != 0 {
			t.Errorf("%d batches, want none", len(batches))
		}
		if got := tr.Confirmed(); got != keepalive {
			t.Errorf("Confirmed = %s, want the keepalive's WAL end %s", got, keepalive)
		}
	})

	t.Run("an older WAL end does not move back", func(t *testing.T) {
		p, dec := newDecodePipeline(t, 0)
		tr := replication.NewTracker(0)
		stream := append(slices.Clone(msgs[:firstTwo]), replication.Message{WALEnd: ends[0]})
		if _, err := runDecode(t, p, dec, tr, stream, nil); err != nil {
			t.Fatal(err)
		}
		if got := tr.Confirmed(); got != ends[1] {
			t.Errorf("Confirmed = %s, want %s", got, ends[1])
		}
	})

	t.Run("open transaction: ignored", func(t *testing.T) {
		p, dec := newDecodePipeline(t, 0)
		tr := replication.NewTracker(0)
		// Begin of transaction 3, then a keepalive before its commit.
		stream := append(slices.Clone(msgs[:firstTwo+1]), replication.Message{WALEnd: keepalive})
		if _, err := runDecode(t, p, dec, tr, stream, nil); err != nil {
			t.Fatal(err)
		}
		if got := tr.Confirmed(); got != ends[1] {
			t.Errorf("Confirmed = %s, want %s (end of transaction 2)", got, ends[1])
		}
	})

	t.Run("pending candidates: ignored until settled", func(t *testing.T) {
		p, dec := newDecodePipeline(t, 0)
		tr := replication.NewTracker(0)
		in := make(chan replication.Message, len(msgs)+1)
		for _, m := range msgs {
			in <- m
		}
		in <- replication.Message{WALEnd: keepalive}
		out := make(chan *batch, 10)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.decode(ctx, dec, tr, newOrder(), in, out, nil) }()

		// Wait until decode flushed both storages' batches of
		// candidates: it read everything queued, the keepalive included.
		// (The TRUNCATE's records came before them.)
		var batches []*batch
		for cands := 0; cands < 2; {
			select {
			case b := <-out:
				batches = append(batches, b)
				if len(b.cands) > 0 {
					cands++
				}
			case <-ctx.Done():
				t.Fatal("decode sent no batches")
			}
		}
		if got := tr.Confirmed(); got != ends[1] {
			t.Errorf("Confirmed = %s with candidates pending, want %s", got, ends[1])
		}
		for _, b := range batches {
			for _, c := range b.cands {
				tr.Settled(c.Txn, 1)
			}
			for _, f := range b.failures {
				tr.Settled(f.Txn, 1)
			}
		}
		if got := tr.Confirmed(); got != ends[8] {
			t.Errorf("Confirmed = %s after settling, want %s", got, ends[8])
		}
		// The next keepalive, now that nothing is pending, is followed.
		in <- replication.Message{WALEnd: keepalive}
		close(in)
		for range out {
			t.Error("unexpected batch")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := tr.Confirmed(); got != keepalive {
			t.Errorf("Confirmed = %s, want %s", got, keepalive)
		}
	})
}

func TestDecodeMalformed(t *testing.T) {
	msgs, _ := capturedStream(t)
	bad := cdccleaner.LSN(0x16_B374D848)
	tests := []struct {
		name string
		msg  replication.Message
		want error
	}{
		{"truncated begin", replication.Message{WALStart: bad, Data: []byte{'B', 0, 0}}, decoder.ErrMalformed},
		{"truncated update", replication.Message{WALStart: bad, Data: msgs[8].Data[:8]}, decoder.ErrMalformed},
		{"empty", replication.Message{WALStart: bad, Data: []byte{}}, decoder.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, dec := newDecodePipeline(t, 0)
			tr := replication.NewTracker(0)
			// A few good messages first (up to the middle of transaction 3).
			stream := append(slices.Clone(msgs[:9]), tt.msg)
			_, err := runDecode(t, p, dec, tr, stream, nil)
			if err == nil {
				t.Fatal("decode returned nil for a malformed message")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "16/B374D848") {
				t.Errorf("error %q does not name the WAL position 16/B374D848", err)
			}
		})
	}
}

func TestDecodeBatchSize(t *testing.T) {
	msgs, _ := capturedStream(t)
	p, dec := newDecodePipeline(t, 2)
	tr := replication.NewTracker(0)
	batches, err := runDecode(t, p, dec, tr, msgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// media has 5 candidates: 2 + 2 + 1; docs has 1.
	var sizes []string
	for _, b := range batches {
		if len(b.cands) > 2 {
			t.Errorf("batch of %d candidates with BatchSize 2", len(b.cands))
		}
		sizes = append(sizes, fmt.Sprintf("%s:%d", b.storage, len(b.cands)))
	}
	slices.Sort(sizes)
	if want := []string{"docs:1", "media:1", "media:2", "media:2"}; !slices.Equal(sizes, want) {
		t.Errorf("batches %q, want %q", sizes, want)
	}
	got := byStorage(t, batches)
	for _, s := range []string{"media", "docs"} {
		if want := filterStorage(s, capturedCandidates); !slices.Equal(got[s], want) {
			t.Errorf("storage %s candidates:\n got %q\nwant %q", s, got[s], want)
		}
	}
}

// TestDecodeFlushesOldPartialBatchesOnCommit: while messages keep arriving
// (the input never runs dry), a partial batch older than the age limit is
// sent at the next commit instead of waiting for the backlog to drain.
func TestDecodeFlushesOldPartialBatchesOnCommit(t *testing.T) {
	msgs, _ := capturedStream(t)
	p, dec := newDecodePipeline(t, 0)
	p.maxBatchAge = 0 // every partial batch is old at the next commit
	in := make(chan replication.Message, len(msgs))
	for _, m := range msgs {
		in <- m
	}
	close(in)
	out := make(chan *batch)
	done := make(chan error, 1)
	go func() { done <- p.decode(t.Context(), dec, replication.NewTracker(0), newOrder(), in, out, nil) }()
	first := <-out
	left := len(in)
	for range out {
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left == 0 {
		t.Fatalf("the first batch (%d candidates) came out only after the whole input was read", len(first.cands))
	}
	if len(first.cands) != 1 || first.cands[0].Path != "a/one.jpg" {
		t.Fatalf("first batch %v, want the single candidate of the first transaction that had one", first.cands)
	}
}

// TestDecodeRecordsTruncate: the captured stream's TRUNCATE of the watched
// table is recorded, one failure per watched column in its storage, with
// its transaction, before that transaction can settle.
func TestDecodeRecordsTruncate(t *testing.T) {
	msgs, _ := capturedStream(t)
	p, dec := newDecodePipeline(t, 0)
	in := make(chan replication.Message, len(msgs))
	for _, m := range msgs {
		in <- m
	}
	close(in)
	out := make(chan *batch, 100)
	tr := replication.NewTracker(0)
	if err := p.decode(t.Context(), dec, tr, newOrder(), in, out, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for b := range out {
		for _, f := range b.failures {
			if f.Reason != decoder.ReasonTruncated {
				continue
			}
			if f.Storage != b.storage || f.Path != "" || f.CommitLSN == 0 || !strings.Contains(f.Detail, "cdc-cleaner scan --storage "+f.Storage) {
				t.Errorf("truncate recorded as %+v", f)
			}
			got = append(got, f.Storage+":"+f.Source)
		}
	}
	slices.Sort(got)
	want := []string{"docs:Media Schema.PhotoTable.doc", "media:Media Schema.PhotoTable.ImageFile", "media:Media Schema.PhotoTable.big", "media:Media Schema.PhotoTable.tags"}
	if !slices.Equal(got, want) {
		t.Errorf("recorded truncates %q, want %q", got, want)
	}
	if tr.Idle() {
		t.Errorf("the truncating transaction settled before its records were")
	}
}

// TestDecodeSendsReferencesBeforeLaterRemovals: a removal batch is sent
// only after every new reference of its storage decoded before it, so
// that it waits for them (order.go) and its reference check sees them.
func TestDecodeSendsReferencesBeforeLaterRemovals(t *testing.T) {
	msgs, _ := capturedStream(t)
	refs := 0
	for size := 1; size <= 4; size++ {
		p, dec := newDecodePipeline(t, size)
		p.cfg.Journal = &memJournal{}
		p.maxBatchAge = time.Hour // batches leave when full, or at the end
		got, err := runDecode(t, p, dec, replication.NewTracker(0), msgs, nil)
		if err != nil {
			t.Fatal(err)
		}
		refs += checkReferencesFirst(t, got)
	}
	if refs == 0 {
		t.Fatal("the captured stream gave no new references; the test proves nothing")
	}
}

// checkReferencesFirst reports every new reference sent after a removal of
// its storage committed later, and returns how many references it saw.
func checkReferencesFirst(t *testing.T, got []*batch) int {
	t.Helper()
	refs := 0
	for i, b := range got {
		if b.isRefs() {
			refs += len(b.refs)
			continue
		}
		for _, c := range b.cands {
			for _, later := range got[i+1:] {
				for _, r := range later.refs {
					if r.Storage == c.Storage && r.CommitLSN < c.CommitLSN {
						t.Errorf("batch size %d: reference %s at %s was sent after the removal of %s at %s", cap(b.cands), r.Path, r.CommitLSN, c.Path, c.CommitLSN)
					}
				}
			}
		}
	}
	return refs
}
