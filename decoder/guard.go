package decoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// checkLengths walks a message's fields before pglogrepl.Parse sees it.
// Parse trusts counts and lengths from the wire: a corrupt count makes it
// allocate gigabytes (which recover cannot catch) or index out of range.
// Parse also ignores whatever follows the last field, and reads a corrupt
// length that comes up short as a shorter value followed by such trailing
// bytes (a truncated path, say): so every message of protocol version 1
// must end exactly where its fields do. Other types are left to Parse,
// which rejects them.
func checkLengths(data []byte) error {
	r := reader{b: data[1:]}
	switch data[0] {
	case 'B': // Begin: final lsn, commit time, xid
		r.skip(20)
	case 'C': // Commit: flags, commit lsn, end lsn, commit time
		r.skip(25)
	case 'O': // Origin: lsn, name
		r.skip(8)
		r.cstring()
	case 'R': // Relation: oid, namespace, name, replident, ncols, columns
		r.skip(4)
		r.cstring()
		r.cstring()
		r.skip(1)
		n := r.uint16()
		for i := 0; i < int(n) && r.err == nil; i++ {
			r.skip(1)
			r.cstring()
			r.skip(8)
		}
	case 'I': // Insert: oid, 'N', tuple
		r.skip(5)
		r.tuple()
	case 'U': // Update: oid, ['K'|'O' tuple], 'N' tuple
		r.skip(4)
		kind := r.byte()
		if kind == 'K' || kind == 'O' {
			r.tuple()
			kind = r.byte()
		}
		if kind != 'N' && r.err == nil {
			r.err = errors.New("update without new tuple")
		}
		r.tuple()
	case 'D': // Delete: oid, 'K'|'O', tuple
		r.skip(5)
		r.tuple()
	case 'T': // Truncate: nrels, options, oids
		n := r.uint32()
		r.skip(1)
		if uint64(n)*4 > uint64(len(r.b)) && r.err == nil {
			r.err = errors.New("truncate relation count exceeds message")
		}
		r.skip(int(n) * 4)
	case 'M': // Message: flags, lsn, prefix, content length, content
		// Flags is 1 for a transactional message, 0 otherwise; Parse
		// reads anything but 1 as non-transactional.
		if f := r.byte(); f > 1 && r.err == nil {
			r.err = fmt.Errorf("unknown message flags %#x", f)
		}
		r.skip(8)
		r.cstring()
		n := r.uint32()
		r.skip(int(n))
	case 'Y': // Type: oid, namespace, name
		r.skip(4)
		r.cstring()
		r.cstring()
	default:
		return nil
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the last field", len(r.b))
	}
	return r.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || n > len(r.b) {
		r.err = errors.New("message shorter than its fields")
		return false
	}
	return true
}

func (r *reader) skip(n int) { r.take(n) }

// take returns the next n bytes and moves past them, or nil (and sets
// r.err) when the message is shorter.
func (r *reader) take(n int) []byte {
	if !r.need(n) {
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) byte() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) uint16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) cstring() {
	if r.err != nil {
		return
	}
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		r.err = errors.New("unterminated string")
		return
	}
	r.b = r.b[i+1:]
}

func (r *reader) tuple() {
	n := r.uint16()
	for i := 0; i < int(n) && r.err == nil; i++ {
		switch r.byte() {
		case 'n', 'u':
		case 't', 'b':
			l := r.uint32()
			if uint64(l) > uint64(len(r.b)) {
				r.err = errors.New("column value longer than message")
				return
			}
			r.skip(int(l))
		default:
			if r.err == nil {
				r.err = errors.New("unknown tuple column kind")
			}
		}
	}
}
