
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        guid TEXT NOT NULL UNIQUE,
        event TEXT NOT NULL,
        action TEXT,
        hook_id INTEGER,
        content_type TEXT NOT NULL,
        received_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'processed', 'ignored', 'error')),
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        processed_at TEXT,
        repo TEXT
    );
    CREATE INDEX deliveries_status ON deliveries(status, id);
    CREATE INDEX deliveries_event ON deliveries(event, id);

    -- The body apart from the bookkeeping: marking a delivery processed then
    -- rewrites a small row, not the whole payload.
    CREATE TABLE delivery_payloads (
        delivery_id INTEGER PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
        payload TEXT NOT NULL
    );

    CREATE TABLE hooks (
        hook_id INTEGER PRIMARY KEY,
        events TEXT NOT NULL DEFAULT '[]',
        content_type TEXT,
        target TEXT,
        repo TEXT,
        last_ping_at TEXT,
        last_delivery_at TEXT
    );

    CREATE TABLE repositories (
        id INTEGER PRIMARY KEY,  -- GitHub's repository id: stable across renames and transfers
        full_name TEXT NOT NULL,
        owner TEXT,
        default_branch TEXT,
        archived INTEGER NOT NULL DEFAULT 0,
        private INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        tracked INTEGER NOT NULL DEFAULT 1,
        url TEXT,
        updated_at TEXT,
        first_seen_at TEXT NOT NULL,
        last_push_at TEXT,
        last_activity_at TEXT
    );
    CREATE INDEX repositories_name ON repositories(full_name);

    CREATE TABLE builds (
        source TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        job TEXT NOT NULL DEFAULT '',
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        workflow TEXT NOT NULL,
        branch TEXT,
        default_branch INTEGER NOT NULL,
        status TEXT NOT NULL,
        event TEXT,
        attempt INTEGER NOT NULL,
        url TEXT,
        started_at TEXT,
        completed_at TEXT,
        actor TEXT,
        head_sha TEXT,
        updated_at TEXT,
        PRIMARY KEY (source, run_id, job)
    );
    CREATE INDEX builds_repo ON builds(repo_id, workflow, branch, completed_at);
    CREATE INDEX builds_completed ON builds(completed_at);

    CREATE TABLE vulnerabilities (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        severity TEXT NOT NULL,
        package TEXT,
        ecosystem TEXT,
        manifest TEXT,
        ghsa_id TEXT,
        cve_id TEXT,
        summary TEXT,
        description TEXT,
        url TEXT,
        created_at TEXT,
        updated_at TEXT,
        fixed_at TEXT,
        dismissed_at TEXT,
        PRIMARY KEY (repo_id, number)
    );
    CREATE INDEX vulnerabilities_state ON vulnerabilities(state, severity);

    CREATE TABLE coverage (
        id INTEGER PRIMARY KEY,
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        branch TEXT,
        sha TEXT,
        value REAL NOT NULL,
        delta REAL,
        url TEXT,
        at TEXT,
        source TEXT NOT NULL
    );
    CREATE INDEX coverage_branch ON coverage(repo_id, branch, at);

    CREATE TABLE dependency_prs (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        merged INTEGER NOT NULL DEFAULT 0,
        title TEXT NOT NULL,
        package TEXT,
        from_version TEXT,
        to_version TEXT,
        url TEXT,
        opened_at TEXT,
        closed_at TEXT,
        updated_at TEXT,
        PRIMARY KEY (repo_id, number)
    );

    CREATE TABLE activity (
        id INTEGER PRIMARY KEY,
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        branch TEXT,
        author TEXT,
        commits INTEGER NOT NULL,
        forced INTEGER NOT NULL,
        bot INTEGER NOT NULL,
        head_sha TEXT,
        at TEXT
    );
    CREATE INDEX activity_repo ON activity(repo_id, at);
    