-- What each system's connector skipped at its last read (malformed entries,
-- a listing that failed part-way), so `plan --no-pull` lists them too. One
-- JSON array of problems ({object, message}) per system.
CREATE TABLE pull_problems (
    system_id   TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
