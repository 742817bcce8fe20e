
    CREATE TABLE summary_items (
        path TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        repo TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('workflow', 'heartbeat')),
        link TEXT,
        report TEXT NOT NULL DEFAULT 'NOT_REPORTED',
        note TEXT,
        updated TEXT,
        schedule TEXT,  -- ISO-8601 duration or cron; NULL = never MISSING
        grace_s INTEGER NOT NULL DEFAULT 0,
        declared INTEGER NOT NULL DEFAULT 0,  -- from an expectation in rules/
        created_at TEXT NOT NULL,
        due_at TEXT,  -- when it turns MISSING unless it reports (precomputed)
        status TEXT,  -- as of the last summary
        status_since TEXT
    );
    CREATE INDEX summary_items_due ON summary_items(due_at);

    CREATE TABLE summaries (
        id INTEGER PRIMARY KEY,
        generated_at TEXT NOT NULL,
        md TEXT NOT NULL,
        org TEXT NOT NULL,
        json TEXT NOT NULL,
        changes INTEGER NOT NULL
    );

    CREATE TABLE pulseox_files (
        owner TEXT NOT NULL,
        repo TEXT NOT NULL,
        path TEXT NOT NULL,
        content TEXT NOT NULL,
        sha TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (owner, repo, path)
    );
    