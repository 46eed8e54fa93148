-- The run lock: one row while a command that changes the store (sync, plan,
-- apply) runs, so two runs never interleave their pulls, plans and applies.
-- The holder renews expires_at (unix seconds) while it works; a holder that
-- died is recognised by its pid on the same host, or once its lease lapses.
CREATE TABLE run_lock (
    name       TEXT   PRIMARY KEY,
    pid        BIGINT NOT NULL,
    host       TEXT   NOT NULL,
    command    TEXT   NOT NULL,
    since      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
