package store

// PendingBytes is the size of the writes submitted and not yet taken by the writer.
func (s *Store) PendingBytes() int64 { return s.pendingBytes.Load() }

// WaitBelow blocks while more than limit bytes of writes wait for the writer, so producers that
// outrun the disk slow down instead of filling memory. It returns at once when the store is
// closed.
func (s *Store) WaitBelow(limit int64) {
	if s.pendingBytes.Load() <= limit {
		return
	}
	s.mu.Lock()
	for s.pendingBytes.Load() > limit && !s.closed {
		s.room.Wait()
	}
	s.mu.Unlock()
}
