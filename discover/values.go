package discover

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/decoder"
)

// Bounds of the walk over one column's sampled values.
const (
	// maxGroups is how many JSON paths of one column are considered.
	maxGroups = 64
	// maxDepth is how deep in a JSON document leaves are collected.
	maxDepth = 16
	// maxLeaves is how many string leaves of one document are read.
	maxLeaves = 1000
	// maxPathLen is the longest value taken for a path: longer ones are
	// text, not file names (S3 keys end at 1024 bytes).
	maxPathLen = 1024
)

// group is what sampled values of one column hold at one place: the
// string leaves at a JSON path, or (Path nil) the values themselves, or
// the elements of arrays.
type group struct {
	Path   cdccleaner.JSONPath
	Leaves []string // distinct, in the order met
}

// key names the group: its path in json_path syntax ("" for none).
func (g group) key() string { return g.Path.String() }

// groups returns what vals, values of a column of type t in their text
// form, hold, grouped by where it sits, at most perGroup distinct leaves
// a group. A text value is one leaf, an array's elements are one leaf
// each, a JSON document's string leaves are grouped by their path (keys
// and [*]) as json_path would name it; paths json_path cannot name (a key
// that holds ".", "[" or "]", or is empty) are left out. Values that
// cannot be read are skipped.
func groups(t cdccleaner.ColumnType, vals []string, perGroup int) []group {
	var out []group
	index := map[string]int{}
	add := func(path cdccleaner.JSONPath, leaf string) {
		k := path.String()
		i, ok := index[k]
		if !ok {
			if len(out) >= maxGroups {
				return
			}
			i = len(out)
			index[k] = i
			out = append(out, group{Path: append(cdccleaner.JSONPath(nil), path...)})
		}
		g := &out[i]
		if len(g.Leaves) >= perGroup || slices.Contains(g.Leaves, leaf) {
			return
		}
		g.Leaves = append(g.Leaves, leaf)
	}
	for _, v := range vals {
		if t.Kind != cdccleaner.KindJSON {
			ps, err := decoder.Paths(t, nil, []byte(v))
			if err != nil {
				continue
			}
			for _, p := range ps {
				add(nil, p)
			}
			continue
		}
		n := 0
		_ = jsonLeaves(v, func(path cdccleaner.JSONPath, leaf string) bool {
			add(path, leaf)
			n++
			return n < maxLeaves
		})
	}
	return out
}

var errStop = errors.New("stop")

// jsonLeaves calls fn with every non-empty string leaf of the JSON
// document doc and its path (keys, and [*] for array elements; empty for a
// document that is a string) until fn returns false. Leaves deeper than
// maxDepth, or below a key json_path cannot name, are skipped. fn must
// copy the path to keep it. The document is read token by token, so its
// nesting has no limit.
func jsonLeaves(doc string, fn func(path cdccleaner.JSONPath, leaf string) bool) error {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	type frame struct{ object, wantKey bool }
	var stack []frame
	var path cdccleaner.JSONPath
	unnameable := 0 // keys on path that json_path cannot name
	// done ends a value: in an object, its key leaves the path.
	done := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			if !nameable(path[len(path)-1].Key) {
				unnameable--
			}
			path = path[:len(path)-1]
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				done()
				continue
			}
			key, _ := tok.(string)
			if !nameable(key) {
				unnameable++
			}
			path = append(path, cdccleaner.JSONStep{Key: key})
			stack[n-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
			path = append(path, cdccleaner.JSONStep{Each: true})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			path = path[:len(path)-1]
			done()
		default:
			if s, ok := tok.(string); ok && s != "" && unnameable == 0 && len(path) <= maxDepth {
				if !fn(path, s) {
					return errStop
				}
			}
			done()
		}
	}
}

// nameable reports whether json_path syntax can name key.
func nameable(key string) bool {
	return key != "" && !strings.ContainsAny(key, ".[]")
}

// plausible reports, cheaply, whether v could be a file's path or key,
// so that values that cannot be (a title, a status, a sentence) cost no
// lookup. A value with "/" or "." could be; so could one word of at least
// 8 characters with a digit, as storage keys without either are (Active
// Storage's 28 base36 characters, a UUID, a content hash).
func plausible(v string) bool {
	switch {
	case v == "" || len(v) > maxPathLen || strings.ContainsAny(v, "\x00\n\r\t"):
		return false
	case strings.ContainsAny(v, "/."):
		return true
	case len(v) < 8 || strings.ContainsRune(v, ' '):
		return false
	}
	return strings.ContainsAny(v, "0123456789")
}

// names returns the canonical paths a leaf could name in a storage: the
// leaf itself when it is one, else its readings as a URL or a spelled path
// (cdccleaner.CanonicalNames), at most MaxNames, shortest first.
func names(leaf string) []string {
	if cdccleaner.ValidatePath(leaf) == nil {
		return []string{leaf}
	}
	ns := cdccleaner.CanonicalNames(leaf)
	if len(ns) > MaxNames {
		ns = ns[:MaxNames]
	}
	return ns
}
