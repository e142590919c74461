package store

// A queue may keep its records under several ids: its own, and up to 255 more that share its id
// in the low 48 bits and carry a level in the next 8 (a priority queue keeps one FIFO per
// priority). Queue ids from the store's sequence stay below 1<<48. Recovery counts such ids as
// the queue's own; DeleteQueue drops only the base id, so callers purge the levels they used.
const levelShift = 48

// LevelQueueID is the id of level of queue id.
func LevelQueueID(id uint64, level uint8) uint64 { return id | uint64(level)<<levelShift }

// baseQueueID is the queue a (level) id belongs to.
func baseQueueID(id uint64) uint64 { return id &^ (0xFF << levelShift) }
