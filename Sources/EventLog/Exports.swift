// Users of the SQLite log see the log's contract and record types with it.
@_exported import LogStorage
