
    ALTER TABLE repositories ADD COLUMN readme INTEGER;
    ALTER TABLE repositories ADD COLUMN api_docs INTEGER;
    ALTER TABLE repositories ADD COLUMN dependabot INTEGER;
    ALTER TABLE repositories ADD COLUMN profile_checked_at TEXT;
    ALTER TABLE hooks ADD COLUMN org TEXT;

    CREATE TABLE health (
        repo_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
        score REAL,  -- NULL when every component is inconclusive
        components TEXT NOT NULL,
        warnings TEXT NOT NULL,
        formula_version INTEGER NOT NULL,
        computed_at TEXT NOT NULL
    );
    CREATE TABLE health_history (
        id INTEGER PRIMARY KEY,
        repo_id INTEGER NOT NULL,
        at TEXT NOT NULL,
        score REAL,
        formula_version INTEGER NOT NULL
    );
    CREATE INDEX health_history_repo ON health_history(repo_id, at);
    CREATE INDEX builds_default ON builds(repo_id, default_branch, completed_at);
    