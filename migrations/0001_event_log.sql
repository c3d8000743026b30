-- The event log: one row per event. This file is an interface: people query
-- these columns with sqlite3. Never edit a shipped migration; add a new one.

-- Facts about this log file (its random log id, the node that owns it).
CREATE TABLE log_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
    origin      TEXT    NOT NULL,            -- node that wrote the event
    "offset"    INTEGER NOT NULL,            -- dense, increasing per origin, from 1
    order_id    TEXT    NOT NULL,
    version     INTEGER NOT NULL,            -- position in the order's stream, from 1
    type        TEXT    NOT NULL,            -- OrderPlaced, PaymentReceived, ...
    payload     TEXT    NOT NULL,            -- JSON object
    event_id    TEXT    NOT NULL UNIQUE,     -- origin-logid-offset, unique everywhere
    recorded_at INTEGER NOT NULL,            -- ms since the Unix epoch
    term        INTEGER NOT NULL DEFAULT 0,  -- leadership term (replication)
    checksum    INTEGER NOT NULL,            -- CRC32C of the other columns
    PRIMARY KEY (origin, "offset")
) WITHOUT ROWID;

CREATE INDEX events_by_order ON events (order_id, version);

-- Per-order snapshots: the folded state after `version` events.
CREATE TABLE checkpoints (
    order_id   TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    state      TEXT    NOT NULL,             -- JSON
    written_at INTEGER NOT NULL,             -- ms since the Unix epoch
    checksum   INTEGER NOT NULL
) WITHOUT ROWID;

-- Orders with a timer pending (a held payment waiting for its order).
-- Written in the same transaction as the events that set or clear it.
CREATE TABLE deadlines (
    order_id TEXT    PRIMARY KEY,
    due_at   INTEGER NOT NULL                -- ms since the Unix epoch
) WITHOUT ROWID;

CREATE INDEX deadlines_by_due ON deadlines (due_at);

-- A readable timeline: one line per event with the payload fields pulled out.
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
FROM events
ORDER BY order_id, version, origin, "offset";
