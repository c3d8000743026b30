-- The ring as this node last knew it: every member it had heard of, and
-- whether the member left. A node restarted during a partition starts from
-- it, so it places orders on the whole ring and not only on the peers it
-- hears (two nodes on their own would make a majority of a ring of two).
-- Never edit a shipped migration; add a new one.
CREATE TABLE ring_members (
    node        TEXT    PRIMARY KEY,
    left        INTEGER NOT NULL,          -- 1: it left the cluster for good
    recorded_at INTEGER NOT NULL           -- ms since the Unix epoch
) WITHOUT ROWID;
