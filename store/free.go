package store

// DiskFree is the free space on the disk holding the store's directory, for the broker's disk
// alarm; ok is false where it cannot be read.
func (s *Store) DiskFree() (free uint64, ok bool) { return freeBytes(s.dir) }
