-- A run that died (kill -9, a crash, a power cut) is closed by the run that
-- finds it dead, as `interrupted`; each operation it journalled as started
-- is settled by the run that completes its work: `done` when the full read
-- that follows finds its effect (and audited as the dead run's), else
-- `interrupted`. The journal keeps the run that started each operation
-- (run_id), so what a dead run left is known to be its own.

ALTER TABLE runs DROP CONSTRAINT runs_status_known;
ALTER TABLE runs ADD CONSTRAINT runs_status_known
    CHECK (status IN ('running', 'ok', 'withheld', 'partial', 'routing_loop', 'failed', 'refused', 'interrupted'));

-- The initial migration's CHECK on the state, named by PostgreSQL.
ALTER TABLE journal DROP CONSTRAINT journal_state_check;
ALTER TABLE journal ADD CONSTRAINT journal_state_known
    CHECK (state IN ('started', 'done', 'failed', 'withheld', 'interrupted'));
ALTER TABLE journal ADD COLUMN run_id BIGINT;

-- The operations left started are few (none between runs, unless one died):
-- the run that settles them finds them without reading the whole journal.
CREATE INDEX journal_started ON journal (plan_id) WHERE state = 'started';
