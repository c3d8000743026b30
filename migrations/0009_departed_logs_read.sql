-- Logs of members that left which this node read whole for its orders on a
-- ring: every event of `origin`'s log whose order that ring places on this
-- node is in this file. A member that left writes nothing more until it comes
-- back in a new incarnation, so a later backfill of the same ring skips that
-- log; without its origin it would need every other member of the ring read,
-- and one silent member would keep the node from granting any term.
-- Never edit a shipped migration; add a new one.
CREATE TABLE departed_logs_read (
    origin      TEXT    NOT NULL,          -- the member that left
    incarnation INTEGER NOT NULL,          -- its incarnation when it left
    ring        TEXT    NOT NULL,          -- the ring's members, sorted, comma-separated
    read_at     INTEGER NOT NULL,          -- ms since the Unix epoch
    PRIMARY KEY (origin, incarnation, ring)
) WITHOUT ROWID;
