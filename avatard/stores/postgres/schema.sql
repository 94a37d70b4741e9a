-- The users table avatard serves, on PostgreSQL: the same columns as on
-- SQLite. The UNIQUE constraint's index serves every lookup. A table made
-- by other means works as long as it has these columns, login unique.
CREATE TABLE IF NOT EXISTS users (
    login TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    forname TEXT NOT NULL
);

-- Change notifications: after every statement that changes users, a
-- notification on channel avatard_users, delivered at commit, tells every
-- daemon listening to drop its cached replies (avatard/stores/postgres/notify.py).
CREATE OR REPLACE FUNCTION avatard_users_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('avatard_users', '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER avatard_users_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION avatard_users_changed();
