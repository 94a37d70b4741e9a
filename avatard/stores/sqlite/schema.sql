-- The users table avatard serves. A table made by the original tutorial,
-- "create table users (login text unique, name text, forname text)",
-- is served unchanged. This one adds NOT NULL, and keeps its rows in the
-- login's own B-tree (WITHOUT ROWID): a lookup reads one B-tree instead of
-- an index and then the table, and the file is about a third smaller.
CREATE TABLE IF NOT EXISTS users (
    login TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    forname TEXT NOT NULL
) WITHOUT ROWID;
