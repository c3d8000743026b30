-- Copies at or below their origin's `indexed_through:ORIGIN` count as
-- indexed for every reader. Builds from migration 0005 up to this one left
-- some out of `order_index` for good: at open the watermark moved to the
-- newest copy stored (a gathered copy ahead of the tail loop, perhaps), and
-- the tail loop's copies below it stored after that restart were never
-- indexed, so reads by order missed them. The writer now indexes such a
-- copy as it stores it; this puts in the ones a file already lacks (one
-- pass over the copies, once). Never edit a shipped migration; add a new one.
INSERT OR IGNORE INTO order_index (order_id, version, origin, "offset")
SELECT e.order_id, e.version, e.origin, e."offset"
FROM log_meta m
JOIN events e ON e.origin = substr(m.key, 17) AND e."offset" <= CAST(m.value AS INTEGER)
WHERE m.key GLOB 'indexed_through:*'
ORDER BY e.order_id, e.version, e.origin, e."offset";
