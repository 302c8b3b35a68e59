package replication

import (
	"sync"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Tracker decides which LSN may be confirmed to the server: the end of the
// newest transaction such that it and every transaction before it have
// settled all their candidates. It is safe for concurrent use: the decoding
// goroutine registers transactions and candidates, workers settle them, and
// the stream reads Confirmed for its status updates.
//
// Memory is bounded by the number of transactions with unsettled candidates:
// a transaction without candidates that commits behind a pending one is
// folded into it.
type Tracker struct {
	mu        sync.Mutex
	confirmed cdccleaner.LSN
	queue     []*txnState // in commit order; the last may still be open
	byTxn     map[uint64]*txnState
}

type txnState struct {
	txn       uint64
	emitted   int
	settled   int
	committed bool
	end       cdccleaner.LSN // transaction end LSN, possibly of later folded transactions
}

// NewTracker starts tracking from start, the slot's confirmed_flush_lsn.
func NewTracker(start cdccleaner.LSN) *Tracker {
	return &Tracker{confirmed: start, byTxn: make(map[uint64]*txnState)}
}

// Begin registers a transaction that started decoding.
func (t *Tracker) Begin(txn uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &txnState{txn: txn}
	t.queue = append(t.queue, s)
	t.byTxn[txn] = s
}

// Emitted records that n more candidates of txn were handed to the pipeline.
func (t *Tracker) Emitted(txn uint64, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byTxn[txn]; s != nil {
		s.emitted += n
	}
}

// Commit records that txn ended at end (the commit record's end LSN).
func (t *Tracker) Commit(txn uint64, end cdccleaner.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byTxn[txn]
	if s == nil {
		return
	}
	s.committed = true
	s.end = end
	if s.emitted == 0 && len(t.queue) > 1 && t.queue[len(t.queue)-1] == s {
		// Nothing to settle: fold into the pending transaction before it, so
		// that a long run of transactions without candidates costs nothing.
		prev := t.queue[len(t.queue)-2]
		prev.end = end
		t.queue = t.queue[:len(t.queue)-1]
		delete(t.byTxn, txn)
		return
	}
	t.advance()
}

// Settled records that n candidates of txn are settled: deleted, absent,
// kept because referenced, or recorded as failed.
func (t *Tracker) Settled(txn uint64, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byTxn[txn]; s != nil {
		s.settled += n
		t.advance()
	}
}

// advance pops settled transactions from the head of the queue.
func (t *Tracker) advance() {
	i := 0
	for ; i < len(t.queue); i++ {
		s := t.queue[i]
		if !s.committed || s.settled < s.emitted {
			break
		}
		if s.end > t.confirmed {
			t.confirmed = s.end
		}
		delete(t.byTxn, s.txn)
	}
	if i > 0 {
		n := copy(t.queue, t.queue[i:])
		clear(t.queue[n:])
		t.queue = t.queue[:n]
	}
}

// Idle reports whether no transaction is open or unsettled.
func (t *Tracker) Idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue) == 0
}

// FollowServer moves the confirmed LSN to walEnd, the server's WAL end from
// a keepalive, if nothing is pending. The caller must have registered every
// message received before the keepalive. This keeps unrelated write traffic
// from making the slot retain WAL.
func (t *Tracker) FollowServer(walEnd cdccleaner.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 && walEnd > t.confirmed {
		t.confirmed = walEnd
	}
}

// Confirmed returns the LSN up to which everything is settled.
func (t *Tracker) Confirmed() cdccleaner.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.confirmed
}

// Pending returns the number of transactions waiting to settle.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue)
}
