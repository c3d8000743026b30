-- `event_id` loses its UNIQUE index. The id spells `origin-logid-offset`
-- (the log id has no dash), so two rows with one id have one (origin,
-- offset), which is the primary key: the key already keeps ids unique, and
-- the second B-tree cost every commit its own pages. Copies from peers are
-- checked to spell their own origin and offset before they are stored.
-- SQLite cannot drop a column's UNIQUE index, so the table is rebuilt; the
-- views that read it are dropped first and made again unchanged.
-- Never edit a shipped migration; add a new one.

DROP VIEW order_timeline;
DROP VIEW order_events;
DROP VIEW log_origins;

CREATE TABLE events_rebuilt (
    origin      TEXT    NOT NULL,            -- node that wrote the event
    "offset"    INTEGER NOT NULL,            -- dense, increasing per origin, from 1
    order_id    TEXT    NOT NULL,
    version     INTEGER NOT NULL,            -- position in the order's stream, from 1
    type        TEXT    NOT NULL,            -- OrderPlaced, PaymentReceived, ...
    payload     TEXT    NOT NULL,            -- JSON object
    event_id    TEXT    NOT NULL,            -- origin-logid-offset, unique by the key
    recorded_at INTEGER NOT NULL,            -- ms since the Unix epoch
    term        INTEGER NOT NULL DEFAULT 0,  -- leadership term (replication)
    checksum    INTEGER NOT NULL,            -- CRC32C of the other columns
    PRIMARY KEY (origin, "offset")
) WITHOUT ROWID;

INSERT INTO events_rebuilt (origin, "offset", order_id, version, type, payload, event_id, recorded_at, term, checksum)
SELECT origin, "offset", order_id, version, type, payload, event_id, recorded_at, term, checksum
FROM events ORDER BY origin, "offset";

DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;

CREATE VIEW log_origins AS
SELECT
    e.origin,
    COUNT(*)                  AS events,
    MAX(e."offset")           AS last_offset,
    p.through_offset          AS copied_through
FROM events e
LEFT JOIN replica_positions p ON p.origin = e.origin
GROUP BY e.origin;

CREATE VIEW order_events AS
SELECT e.origin, e."offset", i.order_id, i.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM order_index i
JOIN events e ON e.origin = i.origin AND e."offset" = i."offset"
UNION ALL
SELECT origin, "offset", order_id, version, type, payload, event_id, recorded_at, term, checksum
FROM events
WHERE origin = (SELECT value FROM log_meta WHERE key = 'node')
  AND "offset" > (SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through');

CREATE VIEW order_timeline AS
SELECT
    order_id,
    version,
    type,
    strftime('%Y-%m-%d %H:%M:%f', recorded_at / 1000.0, 'unixepoch') AS recorded,
    json_extract(payload, '$.customer')     AS customer,
    json_extract(payload, '$.total_cents')  AS total_cents,
    json_extract(payload, '$.payment_id')   AS payment_id,
    json_extract(payload, '$.amount_cents') AS amount_cents,
    json_extract(payload, '$.reason')       AS reason,
    json_extract(payload, '$.shipment_id')  AS shipment_id,
    origin,
    "offset",
    payload
FROM order_events
ORDER BY order_id, version, origin, "offset";
