-- Plan and run statuses are a closed set (coexist::store::PlanStatus,
-- RunStatus), as journal states already are: the store refuses any other.
-- SQLite cannot add a CHECK to an existing table; triggers do the same.
CREATE TRIGGER plans_status_insert BEFORE INSERT ON plans
WHEN NEW.status NOT IN ('planned', 'applying', 'applied', 'partial', 'superseded')
BEGIN SELECT RAISE(ABORT, 'unknown plan status'); END;

CREATE TRIGGER plans_status_update BEFORE UPDATE OF status ON plans
WHEN NEW.status NOT IN ('planned', 'applying', 'applied', 'partial', 'superseded')
BEGIN SELECT RAISE(ABORT, 'unknown plan status'); END;

CREATE TRIGGER runs_status_insert BEFORE INSERT ON runs
WHEN NEW.status NOT IN ('running', 'ok', 'withheld', 'partial', 'routing_loop', 'failed', 'refused')
BEGIN SELECT RAISE(ABORT, 'unknown run status'); END;

CREATE TRIGGER runs_status_update BEFORE UPDATE OF status ON runs
WHEN NEW.status NOT IN ('running', 'ok', 'withheld', 'partial', 'routing_loop', 'failed', 'refused')
BEGIN SELECT RAISE(ABORT, 'unknown run status'); END;
