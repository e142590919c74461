// Package store is Warren's durable storage: definitions and queued messages in one Badger
// database, written by one group-commit writer goroutine, and the messages held by
// delayed-message exchanges in files of their own (# Held messages).
//
// # The data directory
//
//	*.vlog *.sst *.mem MANIFEST KEYREGISTRY …      Badger's files (the key layout below)
//	warren.ballast                                 the disk guard's ballast (# Disk full)
//	delayed/journal                                held messages written since the last checkpoint
//	delayed/n_<vhost>/n_<exchange>/<start>.seg     the held messages due in [start, start+1000) ms
//
// A vhost's or exchange's directory is its name path-escaped after "n_" ("n_%2F" for "/"),
// or "h_" and a 64-bit FNV hash of the name when the escaped name is over 200 bytes.
//
// # Key layout (schema version 1)
//
// store/keys.go is the only place keys are built or parsed. The first byte names the record
// type; names are length-prefixed with one byte (AMQP short strings are at most 255 bytes),
// so a prefix scan of one name never spills into a longer one; integers are fixed-width
// big-endian, so byte order is numeric order.
//
//	0x00 'v'                                      schema version (u32), checked at Open
//	0x00 'q'                                      queue-ID Badger Sequence (Badger's own value)
//	0x00 'd'                                      held-message Badger Sequence (their seq)
//	'E' vhost name                                exchange: flags, kind, args
//	'Q' vhost name                                queue: ID, flags, args
//	'B' vhost source destKind dest routingKey h   binding: args (h: the caller's 32-byte hash)
//	'M' queueID seq                               a queued message, inline or a ref (below)
//	'P' msgID                                     a body shared by several queues' refs
//	'R' queueID seq                               delivery count (u32) of a redelivered message
//	'C'                                           clean-shutdown marker: unix ms of the Close
//	'H' vhost exchange due i64 seq u64            earlier versions' held message, moved to the
//	                                              held-message log at the first IndexDelayed
//	'A' kind name...                              access record made through the management API
//	                                              (vhost, user, permission, policy): the server's JSON
//	'L' group index                               Raft log entry of a group: term, type, time, data
//	'S' group key                                 Raft stable value of a group (current term, vote)
//	'D' vhost kind name id                        an id in the deduplication cache of a durable queue
//	                                              (kind 'q') or exchange ('x'): order u64, expiry i64
//
// Every value starts with a version byte (1); records.go has the formats. The only values
// that do not are the Sequence's, which Badger owns, and the 'A' records (JSON). Message records are
//
//	1 | flags | priority | expiry i64 | exchange | routing key | properties (uvarint len) | body
//
// and ref records are 1 | flags | msgID u64 | size u32 (the 'P' record's length).
//
// # Messages
//
// A message routed to one queue is stored inline in its 'M' record. One routed to several
// is stored once as 'P' (PutShared) and each queue gets a 14-byte ref record (Append with a
// msgID). The writer keeps each body's reference count in memory; Open recounts it from the
// ref records. Badger's UserMeta byte of an 'M' entry says ref (bit 0) and transient (bit 1),
// so recovery and IndexQueue learn both from the LSM without reading values. Transient
// records (non-persistent messages paged out under memory pressure) are deleted at Open.
//
// QueueIndex.Bytes sums StoredSize (body, properties, exchange, routing key and 14 bytes
// of header) without reading a body: for an inline record it is the value's exact length,
// derived from Item.ValueSize (see recordLen), for a ref record the size it carries.
//
// Reading a queue seeks to the cursor ('M' queueID afterSeq+1) and never scans the prefix
// from its start: Badger iterators slow down over deleted keys until compaction drops them.
//
// # The writer
//
// Every write is an op appended to a pending slice under a mutex; the caller never blocks.
// The writer goroutine takes everything waiting (at most 10,000 ops and 16 MiB), plans it
// (entries plus in-memory refcount changes), commits it in one Badger transaction — split
// on ErrTxnTooBig at op boundaries, never inside an op — and calls each done in submission
// order. With SyncWrites each commit is one fsync of the WAL and the value log: one per
// batch, so the more submitters wait, the more each fsync confirms. No ticker, no sleep;
// after the callbacks the writer yields once (runtime.Gosched) so that submitters they woke
// queue their next writes before it takes the next batch — without it, 16 publishers each
// waiting for its confirm settle into two alternating half batches (8 ops per sync, not 14).
// If a commit fails, that op and every later op of the batch fail, and their in-memory
// effects are undone, so what succeeds is always a prefix.
//
// Deleting or purging a queue drops its records in the background, in steps of 4096 keys
// that run between batches; a step reads committed state, so a record's shared-body
// reference is dropped once however the broker's Removes interleave. Records of a queue ID
// without a 'Q' record are dropped the same way after Open.
//
// # Badger options
//
//   - ValueThreshold 256: message bodies go to the value log, the LSM holds keys, pointers
//     and small records, so key-only iteration (recovery, IndexQueue) stays fast and small.
//   - MemTableSize 16 MiB, NumMemtables 3: at most ~60 MiB of memtables (the default is
//     5 × 64 MiB). Limits a transaction to ~2.4 MB of LSM entries, ~26k entries.
//   - No compression and no block cache: keys and pointers barely compress, values in the
//     value log are never compressed, and uncompressed tables are read straight from mmap.
//     Badger's default is a 256 MiB cache.
//   - ValueLogFileSize 64 MiB: value-log GC frees whole files, and the file being written is
//     never collected; smaller files let disk use fall further after a backlog drains. It
//     also caps a message record at just under 64 MiB: MaxBody leaves 1 MiB of that for
//     properties, and configs caps max-message-size at 62 MiB (the default is 16).
//   - NumLevelZeroTables 2 (default 5): deletes reach the levels holding what they delete
//     sooner, which is what lets value-log GC count the deleted bodies (below).
//   - NumCompactors 2, DetectConflicts off (one writer), metrics off, logger at warn.
//   - SyncWrites = !NoSync: Badger syncs the WAL and the value log inside each commit.
//
// Value-log GC runs every Options.GCInterval: RunValueLogGC(0.5) until ErrNoRewrite. Badger
// chooses files only by discard statistics that compactions gather, and a compaction counts a
// deleted body only when the delete meets the record in one level. After a backlog drains,
// the deletes sit in an upper level below its size target and are never compacted down, so
// GC frees nothing (1M × 1 KiB drained: 1.07 GiB → 0.9 GiB). When the value log is large and
// the LSM has stale data in more than one level, the GC pass flattens the LSM (keys and
// pointers only: ~0.6 s for 1M records) and runs again: 1.07 GiB → 141 MiB. What stays is
// the value-log file being written and the deletes still in the memtable, which go with
// later traffic or the next Close.
//
// Memory: Badger writes and reads the value log through mmap and keeps every file it uses
// mapped, so each body written or read would stay resident as a file page (RSS grew one for
// one with a persistent backlog: 2.2 GB for 2M × 1 KiB). Every Options.PageOutInterval
// (default 1 s) the store reads /proc/self/maps and advises MADV_PAGEOUT on the mappings of
// every value-log file but the one being written: the kernel drops those pages, and a read
// that needs one faults it back in from disk. The advice never changes what a mapping holds,
// so a file Badger unmaps or replaces meanwhile is harmless. Linux 5.4 or later; elsewhere
// the loop logs once and stops. Anonymous memory with a 2M × 1 KiB backlog stays near
// 200 MiB.
//
// Disk writes: a write fault in the mapping goes through the page cache's read-around, so
// the file being written fills with folios as large as the device's read-ahead, and each
// commit's msync writes back every folio it touched in whole (one confirming publisher, 1 KiB
// messages: 26 KB written per message). While commits average under 64 KiB, the same loop
// advises MADV_RANDOM on the value-log file being written and the memtable WALs (page-sized
// folios: 14 times fewer bytes written); over 128 KiB, where whole folios are mostly new data
// and a fault per page costs more CPU than the folios cost disk, MADV_NORMAL. It looks for a
// newly created file every 100 ms.
//
// # Held messages
//
// A delayed-message exchange's messages wait for their due time in the held-message log
// (delayedlog.go), not in Badger: kept there, a million of them were read back in due order
// from random places in the value log (page faults, RSS), deleted one Badger delete at a time,
// and rewritten by value-log GC mid-drain (docs/performance.md, "Delayed messages").
//
// Each held message is appended to the segment file of its due time's slice (1 s of due time)
// and to the journal. The log's writer goroutine (not Badger's) takes every waiting write (at
// most 16 MiB), makes one write per segment file touched and one to the journal, fsyncs the
// journal alone, and then confirms them all: one fsync per batch, whatever the number of
// slices. Records are framed (length u32, CRC-32C u32, payload; delayedseg.go), so a crash
// mid-write leaves a readable prefix and a torn tail that recovery cuts off. A checkpoint —
// when the journal reaches 32 MiB, 256 segment files were written since the last one, or a
// removal needs it — fsyncs those segment files and their directories, then empties the
// journal. Open replays the journal: each persistent record no segment file holds (by its
// sequence number) is appended to its file; transient records, records marked delivered and
// torn tails are dropped by rewriting the file (temporary file, fsync, rename).
//
// Reads (ReadDelayed) read a slice's file whole with pread — no mmap, so the page cache does
// not count as the broker's RSS — sort it by due time and sequence, and decode only the
// records they return; they see only records whose batch was confirmed. A delivered message
// (DeleteDelayed) costs no write at once: a reaper goroutine waits for the deliveries to be
// committed (Store.Flush, as they went to queues through Badger), then appends a delivery
// mark (the delivered sequence numbers) to the slice's file, or removes the file when every
// message in it is delivered — after a checkpoint if the journal may still hold its records.
// A mark lost in a machine crash delivers its messages again, as an ack lost in a crash does.
// Dropping an exchange's messages (DropDelayed) removes its directory. A slice is a file, so
// delays spread over days make one small file per second of due time (86,400 for a day); and a
// read holds one slice's file in memory, so a second of due time with hundreds of thousands of
// messages costs tens of MiB while it is read.
//
// Below the disk reserve the log refuses new held messages with ErrDiskFull, as the writer
// refuses message writes; a failed write is cut off the files it reached (ENOSPC is
// ErrDiskFull), so nothing refused is ever delivered. An error that cannot be undone (a
// failed fsync or truncate) refuses every held message until the next Open sorts the files out.
//
// # Disk full
//
// Badger writes its value log, memtable WALs and LSM tables through shared mmaps of files it
// creates sparse (ftruncate to 2 × ValueLogFileSize, 2 × MemTableSize, the table's size). A
// write to a page the disk has no block for is SIGBUS, which Go turns into a fatal "unexpected
// fault address", not a panic: a disk filled by another process killed the broker, and again
// at every restart (Open creates a new value-log file and WAL). Three defences:
//
//   - The writer preallocates (fallocate) the log files Badger writes commits into, before it
//     lets a commit write into them: after every commit it looks for a new value-log or WAL
//     file (two stats) and allocates the value-log file up to ValueLogFileSize + one batch +
//     1 MiB (81 MiB; a write starts below ValueLogFileSize and adds at most a batch; a larger
//     batch gets the whole file first) and each WAL in whole (32 MiB). Commits then never
//     fault. Cost: up to 17 MiB of the value-log file and 16 MiB of each live WAL allocated
//     early; Badger truncates the value-log file when it moves on and deletes a WAL once
//     flushed. Fallocated zeros read like sparse ones, so recovery is unchanged.
//   - A ballast file (warren.ballast in the data directory, half the reserve, at most
//     64 MiB) is allocated while the disk has room for it above the reserve, and deleted as
//     soon as less than 1 MiB is free (the disk guard reads statfs every second, every 10 ms
//     below the reserve, and the writer before every batch while low). What Badger writes
//     on its own goroutines — the header page of the file it creates, memtable flushes,
//     compactions, value-log GC — then finds blocks after another process took the rest of
//     the disk. A process that keeps writing after ENOSPC can take the ballast too; then a
//     flush or compaction that starts at that moment can still fault. It is released at
//     the floor, not at the reserve, because a filler still running would take it as well.
//   - Below the reserve (Options.DiskReserve, SetDiskReserve) the writer fails ops that
//     add data with ErrDiskFull; removes, drops and definitions still commit, so consumers
//     can drain. It checks free space every 4 MiB of messages, and before every batch while
//     low, so confirms resume with the first batch after space returns.
//
// Open on a disk with less than the ballast size free (a previous run's ballast is released
// first) waits, logging every 10 s, and opens once space is freed: failing instead would make
// a supervisor restart the broker in a loop, opening would crash.
//
// Giving space back: while the disk is below the reserve and messages were removed since the
// last look (at most once a second), the store reclaims: it flushes the memtables (Badger has
// no call for it; the writer sets and drops the 0x00 'f' marker key, as DropPrefix flushes
// first and blocks writes meanwhile, so it runs alone on the writer), flattens the LSM if
// deletes sit in more than one level, and runs value-log GC, which deletes the files whose
// messages are all gone. Without it a drained queue's deletes sat in the memtable, GC found
// no discard statistics, and publishes were nacked until a restart. What stays is the
// value-log file being written, the WALs and the ballast. The flush writes level-0 tables
// through mappings of their full size, so it runs only while the disk has room for what the
// memtables can hold (an upper bound the writer keeps from the entries it committed since the
// last flush, at most 48 MiB, plus 2 MiB; the ballast is released for it if that makes the
// room), and the flatten only with room for the LSM too: without this check a reclaim on a
// disk another process had filled crashed the broker with SIGBUS in one run of twelve of
// cmd/warren's disk-full test.
//
// DiskFree returns the last statfs reading (the ballast counts as used), so the broker can
// poll it for its disk alarm.
package store
