-- The users table avatard serves, on PostgreSQL: the same columns as on
-- SQLite. The UNIQUE constraint's index serves every lookup. A table made
-- by other means works as long as it has these columns, login unique.
CREATE TABLE IF NOT EXISTS users (
    login TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    forname TEXT NOT NULL
);
