-- Plan and run statuses are a closed set (coexist::store::PlanStatus,
-- RunStatus), as journal states already are: the store refuses any other.
ALTER TABLE plans ADD CONSTRAINT plans_status_known
    CHECK (status IN ('planned', 'applying', 'applied', 'partial', 'superseded'));
ALTER TABLE runs ADD CONSTRAINT runs_status_known
    CHECK (status IN ('running', 'ok', 'withheld', 'partial', 'routing_loop', 'failed', 'refused'));
