import GRDB

extension GroupCommitWriter {
    func write(_ request: AppendRequest, from offset: inout Int64, now: Int64, _ db: Database) throws -> [EventRecord] {
        let insert = try db.cachedStatement(sql: EventRecord.insertSQL)
        presence.insert(request.events.lazy.map(\.orderID))
        if let checkpoint = request.checkpoint { presence.insert(CollectionOfOne(checkpoint.orderID)) }
        var records: [EventRecord] = []
        records.reserveCapacity(request.events.count)
        // An event at or below a checkpoint's version (a leader writing an
        // order's last event again in its term) was not folded into it, and
        // may supersede what the checkpoint holds above it: it goes, as for
        // copies. Events of one order in a request rise from the first.
        let dropStaleCheckpoint = try db.cachedStatement(sql: "DELETE FROM checkpoints WHERE order_id = ? AND version >= ?")
        var lastOrder: String?
        for event in request.events {
            if event.orderID != lastOrder {
                try dropStaleCheckpoint.execute(arguments: [event.orderID, event.version])
                lastOrder = event.orderID
            }
            let record = EventRecord(
                origin: origin, offset: offset, orderID: event.orderID, version: event.version,
                type: event.type, payload: event.payload, eventID: EventLog.eventID(prefix: eventIDPrefix, offset: offset),
                recordedAt: now, term: event.term)
            try record.insert(using: insert, db)
            tailBuffer.append(UnindexedTail.Entry(orderID: record.orderID, version: record.version, origin: origin, offset: offset))
            records.append(record)
            offset += 1
        }
        if let checkpoint = request.checkpoint {
            flushTailBuffer()
            let unindexed = (tail.entries(orderID: checkpoint.orderID, after: indexedThrough) ?? []) + unindexedCopies(of: checkpoint.orderID)
            try EventLog.upsert(checkpoint, writtenAt: now, in: db, unindexed: unindexed)
        }
        if let deadline = request.deadline {
            switch deadline.change {
            case .set(let dueAt):
                try db.execute(
                    sql: "INSERT INTO deadlines (order_id, due_at) VALUES (?, ?) ON CONFLICT(order_id) DO UPDATE SET due_at = excluded.due_at",
                    arguments: [deadline.orderID, dueAt])
            case .clear:
                try db.execute(sql: "DELETE FROM deadlines WHERE order_id = ?", arguments: [deadline.orderID])
            }
        }
        if let promise = request.promise {
            try db.execute(
                sql: """
                    INSERT INTO term_promises (group_key, term, leader, promised_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(group_key) DO UPDATE SET term = excluded.term, leader = excluded.leader, promised_at = excluded.promised_at
                    WHERE excluded.term > term_promises.term OR (excluded.term = term_promises.term AND excluded.leader > term_promises.leader)
                    """,
                arguments: [promise.group, promise.term, promise.leader, now])
        }
        if let ring = request.ring {
            try db.execute(sql: "DELETE FROM ring_members")
            for (node, left) in ring.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "INSERT INTO ring_members (node, left, recorded_at) VALUES (?, ?, ?)", arguments: [node, left ? 1 : 0, now])
            }
        }
        for read in request.departedLogsRead {
            try db.execute(
                sql: "INSERT OR IGNORE INTO departed_logs_read (origin, incarnation, ring, read_at) VALUES (?, ?, ?, ?)",
                arguments: [read.origin, Int64(clamping: read.incarnation), read.ringText, now])
        }
        return records
    }

    /// Copies of a peer's events: a row already here (same origin and
    /// offset, hence same event id) is left as it is. A copy that lands at or
    /// below an order's checkpoint was not folded into it (two sides of a
    /// partition wrote the same versions), so that checkpoint is dropped
    /// and the next activation replays the order whole.
    func write(_ batch: ReplicatedBatch, now: Int64, _ db: Database) throws -> Int {
        let insert = try db.cachedStatement(sql: EventRecord.insertOrIgnoreSQL)
        let dropStaleCheckpoint = try db.cachedStatement(sql: "DELETE FROM checkpoints WHERE order_id = ? AND version >= ?")
        let index = try db.cachedStatement(sql: #"INSERT OR IGNORE INTO order_index (order_id, version, origin, "offset") VALUES (?, ?, ?, ?)"#)
        // A tail loop's batch comes in offset order: its copies go to the
        // index in the background, by ranges of their origin's log (like
        // own events; each random insert into the index rewrote a page in
        // the WAL). Gathered and backfilled copies are indexed now.
        let deferIndex = batch.throughOffset != nil
        presence.insert(batch.events.lazy.map(\.orderID))
        var inserted = 0
        for record in batch.events {
            try record.insert(using: insert, db)
            if db.changesCount > 0 {
                inserted += 1
                if deferIndex && copyWatermarks[record.origin] == nil && newWatermarks[record.origin] == nil {
                    // The first tail-loop copy of this origin: what is
                    // below it was indexed as it was stored.
                    newWatermarks[record.origin] = record.offset - 1
                    try EventLog.startCopyWatermark(origin: record.origin, at: record.offset - 1, db)
                }
                // A copy at or below its origin's watermark counts as
                // indexed for every reader, so it goes to the index now,
                // whatever path brought it. (Found by a test against a real
                // file: at open the watermark moves to the newest copy
                // stored, a gathered one ahead of the tail loop perhaps;
                // the tail loop's copies below it that came after the
                // restart were never indexed, and reads by order missed
                // them for good.)
                let watermark = copyWatermarks[record.origin] ?? newWatermarks[record.origin] ?? .max
                if deferIndex && record.offset > watermark {
                    copyBuffer.append(UnindexedTail.Entry(orderID: record.orderID, version: record.version, origin: record.origin, offset: record.offset))
                } else {
                    // Like dropStaleCheckpoint, through GRDB: copies are not
                    // the append path that EventRecord.insert binds by hand for.
                    try index.execute(arguments: [record.orderID, record.version, record.origin, record.offset])
                }
                try dropStaleCheckpoint.execute(arguments: [record.orderID, record.version])
            }
        }
        if !batch.deadlines.isEmpty {
            let earlier = try db.cachedStatement(sql: """
                INSERT INTO deadlines (order_id, due_at) VALUES (?, ?)
                ON CONFLICT(order_id) DO UPDATE SET due_at = MIN(due_at, excluded.due_at)
                """)
            for (orderID, dueAt) in batch.deadlines.sorted(by: { $0.key < $1.key }) {
                try earlier.execute(arguments: [orderID, dueAt])
            }
        }
        if let through = batch.throughOffset {
            try db.cachedStatement(sql: """
                INSERT INTO replica_positions (origin, through_offset, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(origin) DO UPDATE SET through_offset = excluded.through_offset, updated_at = excluded.updated_at
                WHERE excluded.through_offset > replica_positions.through_offset
                """).execute(arguments: [batch.origin, through, now])
        }
        return inserted
    }

    /// Own events put back (see `EventLog.reimport`): stored as they are,
    /// then every own event up to the new end is indexed at once (so reads
    /// by order find the put-back ones through `order_index`, like the rest)
    /// and the own log goes on past `floor`.
    func reimport(_ events: [EventRecord], floor: Int64, offset: inout Int64, _ db: Database) throws -> Int {
        // It moves `indexed_through` itself: an index batch under way stops
        // (the chunks it committed stay; readers count them once).
        indexJob = nil
        let insert = try db.cachedStatement(sql: EventRecord.insertOrIgnoreSQL)
        let dropStaleCheckpoint = try db.cachedStatement(sql: "DELETE FROM checkpoints WHERE order_id = ? AND version >= ?")
        presence.insert(events.lazy.map(\.orderID))
        var inserted = 0
        var last = offset - 1
        for record in events {
            try record.insert(using: insert, db)
            if db.changesCount > 0 {
                inserted += 1
                // A checkpoint folded before this event came back does not
                // hold it: the next activation replays the order whole.
                try dropStaleCheckpoint.execute(arguments: [record.orderID, record.version])
            }
            last = max(last, record.offset)
        }
        let end = max(last, floor)
        if end > offset - 1 { offset = end + 1 }
        // Kept for the next open: the own log never goes below it again.
        try db.execute(
            sql: """
                INSERT INTO log_meta (key, value) VALUES ('offset_floor', ?)
                ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))
                """,
            arguments: [end])
        flushTailBuffer()
        if end > indexedThrough {
            let from = max(indexedThrough, reindexed?.through ?? 0)
            try EventLog.index(origin: origin, after: from, through: end, db)
            // In memory once the transaction commits (see `commit`).
            reindexed = (reindexed?.from ?? indexedThrough, end)
        }
        return inserted
    }
}
