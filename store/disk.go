package store

import "fmt"

// diskCheckEvery: bytes written between two free-space checks while the disk is not low.
const diskCheckEvery = 4 << 20

// checkDisk sets w.diskErr while the disk holding the store has less than the reserve (plus
// this batch) free. Badger writes its logs through mmap, and a write to an mmapped page with
// no disk block behind it kills the process with SIGBUS instead of returning ENOSPC, so
// refusing new data early is the only way to fail writes with an error. It asks the file
// system once per diskCheckEvery bytes, and before every batch while the disk is low.
func (w *writer) checkDisk(batch []op) {
	var size int64
	for i := range batch {
		if batch[i].addsData() {
			size += int64(batch[i].bytes())
		}
	}
	w.sinceDiskCheck += size
	if w.diskErr == nil && w.sinceDiskCheck < diskCheckEvery {
		return
	}
	w.sinceDiskCheck = 0
	reserve := w.s.diskReserve
	free, ok := w.freeSpace(w.s.dir)
	if !ok || reserve < 0 {
		w.diskErr = nil
		return
	}
	if free >= uint64(reserve+size) {
		if w.diskErr != nil {
			w.s.log.Info().Uint64("free_mib", free>>20).Msg("store: disk space available again")
		}
		w.diskErr = nil
		return
	}
	if w.diskErr == nil {
		w.s.log.Error().Uint64("free_mib", free>>20).Int64("reserve_mib", reserve>>20).
			Msg("store: disk nearly full; refusing new messages until space is freed")
	}
	w.diskErr = fmt.Errorf("%w: %d MiB free on the disk of %s, below the %d MiB reserve",
		ErrDiskFull, free>>20, w.s.dir, reserve>>20)
}
