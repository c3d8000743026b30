-- `order_timeline.superseded` applies both rules of the fold
-- (OrderMerge.superseded, docs/protocol.md "Superseded events"). A leader's
-- first event of an order in a new term names the term of the event it went
-- on from (`after_term` and `after_leader` in its payload; its later events
-- follow their own term's). From the newest term's last event down, each
-- event's predecessor is the event of that term at the version before; at a
-- version this chain reaches, every other event is superseded. Elsewhere an
-- event is superseded when the order holds an event at the same or a lower
-- version with a newer term (as 0006 had it). Never edit a shipped
-- migration; add a new one.
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
    COALESCE(
        -- The chain: NULL where it does not reach this version, else 0 for
        -- its event and 1 for any other.
        (
            WITH RECURSIVE chain(version, term, origin, after_term, after_leader) AS (
                SELECT * FROM (
                    SELECT t.version, t.term, t.origin,
                           json_extract(t.payload, '$.after_term'), json_extract(t.payload, '$.after_leader')
                    FROM order_events t
                    WHERE t.order_id = e.order_id AND t.term > 0
                    ORDER BY t.term DESC, t.origin DESC, t.version DESC
                    LIMIT 1
                )
                UNION ALL
                -- The event of the named term at the version before (its
                -- term's leader is its origin), while there is one. (`+`
                -- keeps SQLite from reading the origin's whole log for it.)
                SELECT c.version - 1, COALESCE(c.after_term, c.term), COALESCE(c.after_leader, c.origin),
                       (SELECT json_extract(p.payload, '$.after_term') FROM order_events p
                        WHERE p.order_id = e.order_id AND p.version = c.version - 1
                          AND p.term = COALESCE(c.after_term, c.term) AND +p.origin = COALESCE(c.after_leader, c.origin)),
                       (SELECT json_extract(p.payload, '$.after_leader') FROM order_events p
                        WHERE p.order_id = e.order_id AND p.version = c.version - 1
                          AND p.term = COALESCE(c.after_term, c.term) AND +p.origin = COALESCE(c.after_leader, c.origin))
                FROM chain c
                WHERE EXISTS (
                    SELECT 1 FROM order_events p
                    WHERE p.order_id = e.order_id AND p.version = c.version - 1
                      AND p.term = COALESCE(c.after_term, c.term) AND +p.origin = COALESCE(c.after_leader, c.origin))
            )
            SELECT NOT (chain.term = e.term AND chain.origin = e.origin)
            FROM chain WHERE chain.version = e.version
            ORDER BY 1
            LIMIT 1
        ),
        -- Elsewhere: a newer term at the same or a lower version.
        EXISTS (
            SELECT 1 FROM order_events n
            WHERE n.order_id = e.order_id AND n.version <= e.version
              AND (n.term > e.term OR (n.term = e.term AND n.term > 0 AND n.origin > e.origin))
        )
    ) AS superseded,
    e.payload
FROM order_events e
ORDER BY e.order_id, e.version, e.origin, e."offset";
