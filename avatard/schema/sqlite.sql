-- The users table avatard serves. A table made by the original tutorial,
-- "create table users (login text unique, name text, forname text)",
-- is served unchanged; this one only adds NOT NULL.
CREATE TABLE IF NOT EXISTS users (
    login TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    forname TEXT NOT NULL
);
