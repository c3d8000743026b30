-- Copies of peers' events that a follower's tail loop stores (in offset
-- order) go to `order_index` in the background too, in sorted batches by
-- ranges of their origin's log, as the node's own events do: each random
-- insert into the index rewrote a page in the WAL at every commit.
-- `indexed_through:ORIGIN` in log_meta says how far ORIGIN's copies are
-- indexed; above it only gathered and backfilled copies are (they are
-- indexed as they are stored). The views read those above the watermark
-- from the log. Never edit a shipped migration; add a new one.

DROP VIEW order_timeline;
DROP VIEW order_events;

CREATE VIEW order_events AS
SELECT e.origin, e."offset", i.order_id, i.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM order_index i
JOIN events e ON e.origin = i.origin AND e."offset" = i."offset"
UNION ALL
SELECT origin, "offset", order_id, version, type, payload, event_id, recorded_at, term, checksum
FROM events
WHERE origin = (SELECT value FROM log_meta WHERE key = 'node')
  AND "offset" > (SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through')
UNION ALL
SELECT e.origin, e."offset", e.order_id, e.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM log_meta m
JOIN events e ON e.origin = substr(m.key, 17) AND e."offset" > CAST(m.value AS INTEGER)
WHERE m.key GLOB 'indexed_through:*'
  AND NOT EXISTS (
      SELECT 1 FROM order_index i
      WHERE i.order_id = e.order_id AND i.version = e.version AND i.origin = e.origin AND i."offset" = e."offset");

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
