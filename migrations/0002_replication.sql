-- Replication: how far this node has copied each peer's log.
-- Never edit a shipped migration; add a new one.

-- One row per origin this node follows. Every event of `origin` up to
-- `through_offset` that this node keeps is in `events`; the row moves in the
-- same transaction as the events it covers.
CREATE TABLE replica_positions (
    origin         TEXT    PRIMARY KEY,
    through_offset INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL          -- ms since the Unix epoch
) WITHOUT ROWID;

-- Per origin: the events this file holds, the position it has copied through
-- and, for the node's own log, its newest offset.
CREATE VIEW log_origins AS
SELECT
    e.origin,
    COUNT(*)                  AS events,
    MAX(e."offset")           AS last_offset,
    p.through_offset          AS copied_through
FROM events e
LEFT JOIN replica_positions p ON p.origin = e.origin
GROUP BY e.origin;
