-- Leadership terms (consistent mode). Every decision is made under a term
-- for its order's preference list that a majority of that list granted;
-- `events.term` holds the term's number (its leader is the event's origin).
-- Never edit a shipped migration; add a new one.

-- The terms this node has granted, one per preference list (its members in
-- order, comma-separated): it acknowledges nothing of an older term for
-- that list, and grants none older again. Written and synced before the
-- grant is answered.
CREATE TABLE term_promises (
    group_key   TEXT    PRIMARY KEY,
    term        INTEGER NOT NULL,
    leader      TEXT    NOT NULL,
    promised_at INTEGER NOT NULL          -- ms since the Unix epoch
) WITHOUT ROWID;

-- The timeline shows the events a newer term overrules: written in an older
-- term at or after the version where the newer term began (a deposed
-- leader's write, never acknowledged). The order's fold leaves them out.
DROP VIEW order_timeline;
CREATE VIEW order_timeline AS
SELECT
    e.order_id,
    e.version,
    e.type,
    strftime('%Y-%m-%d %H:%M:%f', e.recorded_at / 1000.0, 'unixepoch') AS recorded,
    json_extract(e.payload, '$.customer')     AS customer,
    json_extract(e.payload, '$.total_cents')  AS total_cents,
    json_extract(e.payload, '$.payment_id')   AS payment_id,
    json_extract(e.payload, '$.amount_cents') AS amount_cents,
    json_extract(e.payload, '$.reason')       AS reason,
    json_extract(e.payload, '$.shipment_id')  AS shipment_id,
    e.origin,
    e."offset",
    e.term,
    EXISTS (
        SELECT 1 FROM order_events n
        WHERE n.order_id = e.order_id AND n.version <= e.version
          AND (n.term > e.term OR (n.term = e.term AND n.term > 0 AND n.origin > e.origin))
    ) AS superseded,
    e.payload
FROM order_events e
ORDER BY e.order_id, e.version, e.origin, e."offset";
