-- A run that died (kill -9, a crash, a power cut) is closed by the run that
-- finds it dead, as `interrupted`; each operation it journalled as started
-- is settled by the run that completes its work: `done` when the full read
-- that follows finds its effect (and audited as the dead run's), else
-- `interrupted`. The journal keeps the run that started each operation
-- (run_id), so what a dead run left is known to be its own.

DROP TRIGGER runs_status_insert;
DROP TRIGGER runs_status_update;

CREATE TRIGGER runs_status_insert BEFORE INSERT ON runs
WHEN NEW.status NOT IN ('running', 'ok', 'withheld', 'partial', 'routing_loop', 'failed', 'refused', 'interrupted')
BEGIN SELECT RAISE(ABORT, 'unknown run status'); END;

CREATE TRIGGER runs_status_update BEFORE UPDATE OF status ON runs
WHEN NEW.status NOT IN ('running', 'ok', 'withheld', 'partial', 'routing_loop', 'failed', 'refused', 'interrupted')
BEGIN SELECT RAISE(ABORT, 'unknown run status'); END;

-- SQLite cannot change a table's CHECK: the journal is rebuilt with the new
-- state and column, its rows copied.
CREATE TABLE journal_rebuilt (
    plan_id    TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    system_id  TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('started', 'done', 'failed', 'withheld', 'interrupted')),
    error      TEXT,
    updated_at TEXT   NOT NULL,
    run_id     BIGINT,
    PRIMARY KEY (plan_id, seq)
);
INSERT INTO journal_rebuilt (plan_id, seq, system_id, state, error, updated_at)
    SELECT plan_id, seq, system_id, state, error, updated_at FROM journal;
DROP TABLE journal;
ALTER TABLE journal_rebuilt RENAME TO journal;

-- The operations left started are few (none between runs, unless one died):
-- the run that settles them finds them without reading the whole journal.
CREATE INDEX journal_started ON journal (plan_id) WHERE state = 'started';
