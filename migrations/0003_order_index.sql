-- The order index moves off the commit path. An index on events(order_id)
-- costs every commit one rewritten page per event (a batch's events belong
-- to as many orders, spread over the index). The writer now adds its own
-- events to `order_index` in the background, in sorted batches, and keeps
-- the few not yet added in memory. Copies of peers' events are added in the
-- transaction that stores them. Never edit a shipped migration; add a new one.

DROP INDEX events_by_order;

-- One row per event: where an order's events are. Every event of this
-- file is here, except this node's own events after `indexed_through`.
CREATE TABLE order_index (
    order_id TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    origin   TEXT    NOT NULL,
    "offset" INTEGER NOT NULL,
    PRIMARY KEY (order_id, version, origin, "offset")
) WITHOUT ROWID;

INSERT INTO order_index (order_id, version, origin, "offset")
SELECT order_id, version, origin, "offset" FROM events
ORDER BY order_id, version, origin, "offset";

-- This node's own events up to this offset are in order_index; later ones
-- are found by scanning the log from it (a few thousand at most).
INSERT INTO log_meta (key, value)
SELECT 'indexed_through', COALESCE(MAX("offset"), 0) FROM events
WHERE origin = (SELECT value FROM log_meta WHERE key = 'node');

-- Every event of an order: the indexed ones, then the own events not yet
-- indexed. `SELECT * FROM order_timeline WHERE order_id = ?` reads the index.
CREATE VIEW order_events AS
SELECT e.origin, e."offset", i.order_id, i.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM order_index i
JOIN events e ON e.origin = i.origin AND e."offset" = i."offset"
UNION ALL
SELECT origin, "offset", order_id, version, type, payload, event_id, recorded_at, term, checksum
FROM events
WHERE origin = (SELECT value FROM log_meta WHERE key = 'node')
  AND "offset" > (SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through');

DROP VIEW order_timeline;
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
