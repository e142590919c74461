package store

import "errors"

// Sentinel errors. Every error the package returns either is one of these or wraps one of
// them (or wraps an error from Badger or the operating system) with %w, so callers test with
// errors.Is.
var (
	// ErrLocked: the data directory is held by another open Store, in this process or
	// another. Badger keeps an exclusive flock on the directory while it is open.
	ErrLocked = errors.New("store: data directory in use")

	// ErrSchemaVersion: the data directory has a schema version this build does not read
	// (written by a newer Warren, or not a Warren directory at all).
	ErrSchemaVersion = errors.New("store: unsupported schema version")

	// ErrCorrupt: a key or value could not be decoded (bad version byte, a length that runs
	// past the end of the record, a key of the wrong shape).
	ErrCorrupt = errors.New("store: corrupt record")

	// ErrDiskFull: the disk holding the data directory is (nearly) full. Writes that add
	// data fail with it while deletes still go through, so consumers can drain queues and
	// free space. Badger writes through mmap and dies with SIGBUS on a truly full disk, so
	// the writer refuses new data while less than a reserve is free rather than waiting
	// for ENOSPC.
	ErrDiskFull = errors.New("store: disk full")

	// ErrClosed: the Store was closed before the call. Writes submitted after Close get it
	// through their done callback, called at once on the caller's goroutine.
	ErrClosed = errors.New("store: closed")

	// ErrInvalid: an argument the schema cannot hold (a name or routing key over 255 bytes,
	// a shared body with fewer than one reference).
	ErrInvalid = errors.New("store: invalid argument")
)
