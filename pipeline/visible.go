package pipeline

import "sync"

// visibleSet remembers the last transactions seen visible to new
// snapshots, so that the batches of one big transaction ask once. It holds
// at most visibleSetSize IDs, forgetting the oldest first: 32-bit IDs wrap
// around only after billions of transactions, long after an ID has left.
type visibleSet struct {
	mu    sync.Mutex
	ids   map[uint32]bool
	order []uint32 // in the order added, for forgetting the oldest
}

const visibleSetSize = 1024

func (v *visibleSet) has(xid uint32) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ids[xid]
}

// add remembers xids as visible.
func (v *visibleSet) add(xids []uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ids == nil {
		v.ids = make(map[uint32]bool, visibleSetSize)
	}
	for _, x := range xids {
		if v.ids[x] {
			continue
		}
		v.ids[x] = true
		v.order = append(v.order, x)
	}
	if n := len(v.order) - visibleSetSize; n > 0 {
		for _, x := range v.order[:n] {
			delete(v.ids, x)
		}
		v.order = append(v.order[:0], v.order[n:]...)
	}
}
