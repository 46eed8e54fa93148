-- The staging store of coexist (PostgreSQL). Bodies are JSON documents of the
-- connector contract's types; the store decides nothing about them.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revision', 0);

-- What each system holds: recipients and coexist's stubs.
CREATE TABLE staged_objects (
    system_id TEXT   NOT NULL,
    object_id TEXT   NOT NULL,
    class     TEXT   NOT NULL CHECK (class IN ('recipient', 'stub')),
    body      TEXT   NOT NULL,
    revision  BIGINT NOT NULL,
    PRIMARY KEY (system_id, object_id)
);

-- Where each system's next pull resumes, and how much it held.
CREATE TABLE cursors (
    system_id   TEXT PRIMARY KEY,
    cursor      TEXT,
    recipients  BIGINT NOT NULL,
    pulled_at   TEXT NOT NULL
);

-- The unified global address list, one row per recipient.
CREATE TABLE gal (
    anchor          TEXT PRIMARY KEY,
    primary_address TEXT NOT NULL,
    home            TEXT NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX gal_primary_address ON gal (primary_address);

-- Explicit homes (provisioning).
CREATE TABLE placements (
    address    TEXT PRIMARY KEY,
    system_id  TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    placed_at  TEXT NOT NULL
);

-- Plans and the journal of their operations.
CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL,
    body        TEXT NOT NULL
);

CREATE TABLE journal (
    plan_id    TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    system_id  TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('started', 'done', 'failed', 'withheld')),
    error      TEXT,
    updated_at TEXT   NOT NULL,
    PRIMARY KEY (plan_id, seq)
);

CREATE TABLE runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    summary     TEXT
);

-- Every change applied to a system: who, what, when, before, after.
CREATE TABLE audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        TEXT   NOT NULL,
    run_id    BIGINT,
    actor     TEXT   NOT NULL,
    system_id TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    address   TEXT   NOT NULL,
    before    TEXT,
    after     TEXT
);
