-- schema after migration 17: sqlite_master, normalised
CREATE TABLE activity (
    id INTEGER PRIMARY KEY,
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    branch TEXT,
    author TEXT,
    commits INTEGER NOT NULL,
    forced INTEGER NOT NULL,
    bot INTEGER NOT NULL,
    head_sha TEXT,
    at TEXT
);
CREATE UNIQUE INDEX activity_push ON activity (repo_id, branch, head_sha);
CREATE INDEX activity_repo ON activity (repo_id, at);
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    alert_key TEXT NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX alert_events_key ON alert_events (alert_key, id);
CREATE TABLE alerts (
    key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    repo TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    severity TEXT NOT NULL,
    fact TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    resolved_at TEXT,
    last_notified_at TEXT,
    last_notified_state TEXT,
    notified_firing INTEGER NOT NULL DEFAULT 0,
    occurrences INTEGER NOT NULL DEFAULT 1,
    flips INTEGER NOT NULL DEFAULT 0,
    silenced INTEGER NOT NULL DEFAULT 0,
    held_until TEXT,
    changes TEXT NOT NULL DEFAULT '[]',
    group_key TEXT
);
CREATE INDEX alerts_group ON alerts (group_key, notified_firing) WHERE group_key IS NOT NULL;
CREATE INDEX alerts_held ON alerts (held_until) WHERE held_until IS NOT NULL;
CREATE INDEX alerts_state ON alerts (state, last_seen_at);
CREATE TABLE builds (
    source TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    job TEXT NOT NULL DEFAULT '',
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
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
CREATE INDEX builds_completed ON builds (completed_at);
CREATE INDEX builds_default ON builds (repo_id, default_branch, completed_at, attempt);
CREATE INDEX builds_repo ON builds (repo_id, workflow, branch, completed_at);
CREATE TABLE coverage (
    id INTEGER PRIMARY KEY,
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    branch TEXT,
    sha TEXT,
    value REAL NOT NULL,
    delta REAL,
    url TEXT,
    at TEXT,
    source TEXT NOT NULL
);
CREATE INDEX coverage_branch ON coverage (repo_id, branch, at);
CREATE INDEX coverage_repo ON coverage (repo_id, at);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    guid TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    action TEXT,
    hook_id INTEGER,
    content_type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'ignored', 'error')),
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    processed_at TEXT,
    repo TEXT,
    hook_target TEXT
);
CREATE INDEX deliveries_event ON deliveries (event, id);
CREATE INDEX deliveries_status ON deliveries (status, id);
CREATE TABLE delivery_payloads (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    payload BLOB NOT NULL
);
CREATE TABLE dependency_edges (
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (repo_id, parent, child)
);
CREATE TABLE dependency_graphs (
    repo_id INTEGER PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    root TEXT,
    packages INTEGER NOT NULL,
    truncated INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    read_at TEXT NOT NULL
);
CREATE TABLE dependency_packages (
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    spdx_id TEXT NOT NULL,
    ecosystem TEXT,
    name TEXT NOT NULL,
    package_key TEXT NOT NULL,
    version TEXT,
    PRIMARY KEY (repo_id, spdx_id)
);
CREATE INDEX dependency_packages_key ON dependency_packages (package_key, ecosystem);
CREATE TABLE dependency_prs (
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
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
CREATE TABLE digest_entries (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    channel TEXT NOT NULL,
    rule TEXT NOT NULL,
    repo TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT,
    at TEXT NOT NULL,
    digest_id INTEGER REFERENCES digests (id)
);
CREATE INDEX digest_entries_open ON digest_entries (schedule, channel, digest_id);
CREATE TABLE digests (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    channel TEXT NOT NULL,
    due_at TEXT NOT NULL,
    entries INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (schedule, channel, due_at)
);
CREATE TABLE graphs_wanted (
    repo_id INTEGER PRIMARY KEY,
    wanted_at TEXT NOT NULL
);
CREATE TABLE health (
    repo_id INTEGER PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    score REAL,
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
CREATE INDEX health_history_repo ON health_history (repo_id, at);
CREATE TABLE hooks (
    hook_id INTEGER PRIMARY KEY,
    events TEXT NOT NULL DEFAULT '[]',
    content_type TEXT,
    target TEXT,
    repo TEXT,
    last_ping_at TEXT,
    last_delivery_at TEXT,
    org TEXT
);
CREATE TABLE notice_groups (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    group_key TEXT NOT NULL,
    window_s REAL NOT NULL,
    window_until TEXT NOT NULL,
    opener TEXT,
    gathering INTEGER,
    UNIQUE (channel, group_key)
);
CREATE TABLE notice_members (
    id INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL,
    alert_key TEXT NOT NULL,
    rule TEXT NOT NULL,
    repo TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    what TEXT NOT NULL,
    url TEXT,
    at TEXT NOT NULL
);
CREATE INDEX notice_members_alert ON notice_members (alert_key);
CREATE INDEX notice_members_outbox ON notice_members (outbox_id, id);
CREATE TABLE notice_threads (
    channel TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    posted TEXT NOT NULL,
    posted_at TEXT NOT NULL,
    PRIMARY KEY (channel, alert_key)
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    alert_key TEXT,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'parked', 'merged')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    response TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    leased_by TEXT,
    received_at TEXT,
    group_key TEXT,
    merged_into INTEGER
);
CREATE INDEX outbox_alert ON outbox (alert_key);
CREATE INDEX outbox_channel_due ON outbox (status, channel, next_attempt_at);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE pulseox_files (
    owner TEXT NOT NULL,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    content TEXT NOT NULL,
    sha TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (owner, repo, path)
);
CREATE TABLE redelivery_requests (
    guid TEXT PRIMARY KEY,
    hook_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    repo TEXT,
    event TEXT,
    delivered_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    asks INTEGER NOT NULL,
    delivery_id INTEGER,
    first_asked_at TEXT,
    last_asked_at TEXT,
    answer INTEGER,
    next_ask_at TEXT,
    settled_at TEXT,
    error TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX redelivery_requests_open ON redelivery_requests (outcome) WHERE outcome IN ('requested', 'failed');
CREATE INDEX redelivery_requests_updated ON redelivery_requests (updated_at);
CREATE TABLE repositories (
    id INTEGER PRIMARY KEY,
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
    last_activity_at TEXT,
    readme INTEGER,
    api_docs INTEGER,
    dependabot INTEGER,
    profile_checked_at TEXT,
    last_seen_at TEXT,
    last_issue_activity_at TEXT
);
CREATE INDEX repositories_name ON repositories (full_name);
CREATE TABLE retention_cells (
    cell INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL,
    value TEXT,
    row TEXT
);
CREATE INDEX retention_cells_delivery ON retention_cells (delivery_id);
CREATE TABLE retention_doomed (
    run TEXT NOT NULL,
    delivery_id INTEGER NOT NULL,
    cell INTEGER NOT NULL,
    decides INTEGER NOT NULL,
    PRIMARY KEY (run, delivery_id, cell)
) WITHOUT ROWID;
CREATE TABLE retention_held (
    run TEXT NOT NULL,
    cell INTEGER NOT NULL,
    PRIMARY KEY (run, cell)
) WITHOUT ROWID;
CREATE TABLE retention_rebase (
    run TEXT NOT NULL,
    branch TEXT NOT NULL,
    PRIMARY KEY (run, branch)
) WITHOUT ROWID;
CREATE TABLE rule_stats (
    rule TEXT PRIMARY KEY,
    fired INTEGER NOT NULL DEFAULT 0,
    last_fired_at TEXT,
    errors INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_error_at TEXT
);
CREATE TABLE scan_repos (
    repo_id INTEGER PRIMARY KEY,
    full_name TEXT NOT NULL,
    pushed_at TEXT,
    scanned_at TEXT NOT NULL,
    etags TEXT NOT NULL DEFAULT '{}',
    facts TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX scan_repos_scanned ON scan_repos (scanned_at);
CREATE TABLE scan_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE schedule_marks (
    name TEXT PRIMARY KEY,
    last_run_at TEXT NOT NULL
);
CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    rule TEXT,
    repo TEXT,
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    cron TEXT,
    duration_s INTEGER,
    comment TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE summary_items (
    path TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    repo TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('workflow', 'heartbeat')),
    link TEXT,
    report TEXT NOT NULL DEFAULT 'NOT_REPORTED',
    note TEXT,
    updated TEXT,
    schedule TEXT,
    grace_s INTEGER NOT NULL DEFAULT 0,
    declared INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    due_at TEXT,
    status TEXT,
    status_since TEXT,
    started_at TEXT,
    run_seconds REAL,
    implicit_schedule TEXT,
    implicit_grace_s INTEGER,
    source TEXT,
    declared_schedule TEXT,
    declared_grace_s INTEGER,
    ignored INTEGER NOT NULL DEFAULT 0,
    channels TEXT,
    tz TEXT
);
CREATE INDEX summary_items_due ON summary_items (due_at);
CREATE INDEX summary_items_source ON summary_items (owner, repo, source) WHERE source IS NOT NULL;
CREATE TABLE sweeps (
    name TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE vulnerabilities (
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
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
CREATE INDEX vulnerabilities_repo ON vulnerabilities (repo_id, state, severity);
CREATE INDEX vulnerabilities_state ON vulnerabilities (state, severity);
CREATE TABLE workflow_state (
    repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    url TEXT,
    completed_at TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    event TEXT,
    attempt INTEGER NOT NULL,
    PRIMARY KEY (repo_id, workflow)
);
CREATE TABLE workflows_wanted (
    repo_id INTEGER PRIMARY KEY,
    wanted_at TEXT NOT NULL
);
