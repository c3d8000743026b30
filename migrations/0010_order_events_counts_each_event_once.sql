-- The writer adds an index batch to `order_index` in several transactions,
-- by ranges of order ids, and moves `indexed_through` with the last: in
-- between, some of this node's own events past `indexed_through` are in the
-- index already. `order_events` lists each of them once, as it already did
-- for copies past their watermark. Never edit a shipped migration; add a new
-- one.
DROP VIEW order_events;

CREATE VIEW order_events AS
SELECT e.origin, e."offset", i.order_id, i.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM order_index i
JOIN events e ON e.origin = i.origin AND e."offset" = i."offset"
UNION ALL
SELECT e.origin, e."offset", e.order_id, e.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM events e
WHERE e.origin = (SELECT value FROM log_meta WHERE key = 'node')
  AND e."offset" > (SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through')
  AND NOT EXISTS (
      SELECT 1 FROM order_index i
      WHERE i.order_id = e.order_id AND i.version = e.version AND i.origin = e.origin AND i."offset" = e."offset")
UNION ALL
SELECT e.origin, e."offset", e.order_id, e.version, e.type, e.payload, e.event_id, e.recorded_at, e.term, e.checksum
FROM log_meta m
JOIN events e ON e.origin = substr(m.key, 17) AND e."offset" > CAST(m.value AS INTEGER)
WHERE m.key GLOB 'indexed_through:*'
  AND NOT EXISTS (
      SELECT 1 FROM order_index i
      WHERE i.order_id = e.order_id AND i.version = e.version AND i.origin = e.origin AND i."offset" = e."offset");
