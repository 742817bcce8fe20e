"""Numbered schema migrations; ``PRAGMA user_version`` records the last applied.

A migration is SQL text, or a function given the connection where SQL alone
cannot say it (a column added only if it is missing). A released migration is
never edited, since ``user_version`` cannot tell its texts apart: a database
made from the earlier text would never get what the edit adds.
``tests/test_migrations.py`` holds a fingerprint of each; a change to the schema
is a new migration appended to ``MIGRATIONS``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence

import zstandard

log = logging.getLogger(__name__)

Migration = str | Callable[[sqlite3.Connection], None]

# A process that finds another applying migrations waits for its lock this
# long (one that copies tables of a large database takes a while), not for the
# connection's busy timeout.
MIGRATION_WAIT_MS = 10 * 60 * 1000


def _mend_edited_migrations(conn: sqlite3.Connection) -> None:
    """Migration 10: what migrations 1, 3 and 4 were given after their release.

    They were edited after a release, so a database made from an earlier text
    lacks what an edit added, or keeps what it took out. Each step looks
    before it acts: on a database made from the final texts, this changes
    nothing.
    """

    def columns(table: str) -> dict[str, str]:
        return {row[1]: str(row[2]).upper() for row in conn.execute(f"PRAGMA table_info({table})")}

    def has(kind: str, name: str) -> bool:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
        )
        return found.fetchone() is not None

    def move_payloads(select: str) -> None:
        """Copy ``(id, payload)`` rows into delivery_payloads, compressing text.

        BLOBs were written by versions that compressed them already.
        """
        encode = zstandard.ZstdCompressor(level=1).compress
        after = 0
        while rows := conn.execute(select, (after,)).fetchall():
            conn.executemany(
                "INSERT OR IGNORE INTO delivery_payloads (delivery_id, payload) VALUES (?, ?)",
                [
                    (key, encode(body.encode()) if isinstance(body, str) else body)
                    for key, body in rows
                ],
            )
            after = rows[-1][0]

    payloads_table = """
        CREATE TABLE IF NOT EXISTS delivery_payloads (
            delivery_id INTEGER PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
            payload BLOB NOT NULL
        )"""
    # Migration 1 first kept the body, as text, in deliveries.payload.
    if "payload" in columns("deliveries"):
        conn.execute(payloads_table)
        move_payloads("SELECT id, payload FROM deliveries WHERE id > ? ORDER BY id LIMIT 500")
        conn.execute("ALTER TABLE deliveries DROP COLUMN payload")
    # Then in delivery_payloads, declared TEXT: text from that version, compressed
    # BLOBs from the versions after it, which wrote into the same table.
    elif columns("delivery_payloads").get("payload") == "TEXT":
        conn.execute("ALTER TABLE delivery_payloads RENAME TO delivery_payloads_text")
        conn.execute(payloads_table)
        move_payloads(
            "SELECT delivery_id, payload FROM delivery_payloads_text WHERE delivery_id > ?"
            " ORDER BY delivery_id LIMIT 500"
        )
        conn.execute("DROP TABLE delivery_payloads_text")

    # Migration 3 first kept each rendered summary; nothing has read them since
    # the summary is kept in memory and on disk.
    conn.execute("DROP TABLE IF EXISTS summaries")

    # Migration 4 gained, in turn: the hook target and one row per push; the
    # time of a repository's last news; each workflow's current state.
    if "hook_target" not in columns("deliveries"):
        conn.execute("ALTER TABLE deliveries ADD COLUMN hook_target TEXT")
    if not has("index", "activity_push"):
        conn.execute(
            "DELETE FROM activity WHERE id NOT IN ("
            " SELECT min(id) FROM activity GROUP BY repo_id, branch, head_sha)"
        )
        conn.execute("CREATE UNIQUE INDEX activity_push ON activity(repo_id, branch, head_sha)")
    if "last_seen_at" not in columns("repositories"):
        # Migration 5 appended last_issue_activity_at, which a fresh table has
        # after last_seen_at. Both are plain TEXT: the last column is renamed
        # and appended again, so the order is a fresh table's without
        # rebuilding a table that seven others reference.
        conn.execute(
            "ALTER TABLE repositories RENAME COLUMN last_issue_activity_at TO last_seen_at"
        )
        conn.execute("ALTER TABLE repositories ADD COLUMN last_issue_activity_at TEXT")
        conn.execute(
            "UPDATE repositories SET last_issue_activity_at = last_seen_at, last_seen_at = NULL"
        )
    if not has("table", "workflow_state"):
        conn.execute(
            """
            CREATE TABLE workflow_state (
                repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
                workflow TEXT NOT NULL,
                status TEXT NOT NULL,
                url TEXT,
                completed_at TEXT NOT NULL,
                run_id INTEGER NOT NULL,
                event TEXT,
                attempt INTEGER NOT NULL,
                PRIMARY KEY (repo_id, workflow)
            )"""
        )
        conn.execute(
            """
            INSERT OR REPLACE INTO workflow_state (repo_id, workflow, status, url,
                completed_at, run_id, event, attempt)
            SELECT repo_id, workflow, status, url, completed_at, run_id, event, attempt FROM (
                SELECT *, row_number() OVER (PARTITION BY repo_id, workflow
                    ORDER BY completed_at DESC, attempt DESC) AS rn
                FROM builds WHERE default_branch = 1 AND completed_at IS NOT NULL
                AND source != 'workflow_job' AND status NOT IN
                ('cancelled', 'skipped', 'neutral', 'stale', 'action_required'))
            WHERE rn = 1"""
        )


MIGRATIONS: list[Migration] = [
    # 1: deliveries, hooks and the state derived from them.
    """
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
    -- rewrites a small row, not the whole payload. Compressed JSON: webhook
    -- bodies shrink about 7 times, and the bytes written are the cost of receiving.
    CREATE TABLE delivery_payloads (
        delivery_id INTEGER PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
        payload BLOB NOT NULL
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
    """,
    # 2: alerting — alert lifecycle, the outbox, digests, silences, rule bookkeeping.
    """
    CREATE TABLE alerts (
        key TEXT PRIMARY KEY,  -- rule + repository + subject
        rule TEXT NOT NULL,
        repo TEXT NOT NULL,
        subject TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
        severity TEXT NOT NULL,
        fact TEXT NOT NULL,  -- the latest fact, JSON
        started_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        resolved_at TEXT,
        last_notified_at TEXT,
        last_notified_state TEXT,
        notified_firing INTEGER NOT NULL DEFAULT 0,
        occurrences INTEGER NOT NULL DEFAULT 1,
        flips INTEGER NOT NULL DEFAULT 0,
        silenced INTEGER NOT NULL DEFAULT 0,
        held_until TEXT
    );
    CREATE INDEX alerts_state ON alerts(state, last_seen_at);
    CREATE INDEX alerts_held ON alerts(held_until) WHERE held_until IS NOT NULL;

    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY,
        alert_key TEXT NOT NULL,
        event TEXT NOT NULL,  -- fired, repeated, resolved, seen, held, silenced
        at TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX alert_events_key ON alert_events(alert_key, id);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        alert_key TEXT,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,  -- firing, repeat, resolved, digest, test
        message TEXT NOT NULL,  -- the rendered Message, JSON
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'parked')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        response TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
    CREATE INDEX outbox_alert ON outbox(alert_key);

    CREATE TABLE digest_entries (
        id INTEGER PRIMARY KEY,
        schedule TEXT NOT NULL,  -- the rule's cron
        channel TEXT NOT NULL,
        rule TEXT NOT NULL,
        repo TEXT NOT NULL,
        alert_key TEXT NOT NULL,
        state TEXT NOT NULL,
        title TEXT NOT NULL,
        url TEXT,
        at TEXT NOT NULL,
        digest_id INTEGER REFERENCES digests(id)
    );
    CREATE INDEX digest_entries_open ON digest_entries(schedule, channel, digest_id);

    CREATE TABLE digests (
        id INTEGER PRIMARY KEY,
        schedule TEXT NOT NULL,
        channel TEXT NOT NULL,
        due_at TEXT NOT NULL,
        entries INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (schedule, channel, due_at)
    );

    CREATE TABLE schedule_marks (
        name TEXT PRIMARY KEY,  -- e.g. "digest:0 8 * * *"
        last_run_at TEXT NOT NULL
    );

    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        rule TEXT,  -- fnmatch pattern; NULL = every rule
        repo TEXT,  -- fnmatch pattern; NULL = every repository
        starts_at TEXT NOT NULL,
        ends_at TEXT,  -- NULL = until deleted
        cron TEXT,  -- recurring: active for duration_s after each cron time
        duration_s INTEGER,
        comment TEXT,
        created_at TEXT NOT NULL
    );

    CREATE TABLE rule_stats (
        rule TEXT PRIMARY KEY,
        fired INTEGER NOT NULL DEFAULT 0,
        last_fired_at TEXT,
        errors INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_at TEXT
    );
    """,
    # 3: the status summary — items with their last status, and pulseox report files.
    """
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

    CREATE TABLE pulseox_files (
        owner TEXT NOT NULL,
        repo TEXT NOT NULL,
        path TEXT NOT NULL,
        content TEXT NOT NULL,
        sha TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (owner, repo, path)
    );
    """,
    # 4: health — scores with their components, a history for trends; what scans learn.
    """
    ALTER TABLE repositories ADD COLUMN readme INTEGER;
    ALTER TABLE repositories ADD COLUMN api_docs INTEGER;
    ALTER TABLE repositories ADD COLUMN dependabot INTEGER;
    ALTER TABLE repositories ADD COLUMN profile_checked_at TEXT;
    ALTER TABLE repositories ADD COLUMN last_seen_at TEXT;  -- last processed news of it
    ALTER TABLE hooks ADD COLUMN org TEXT;
    ALTER TABLE deliveries ADD COLUMN hook_target TEXT;  -- repository | organization | integration
    -- The same push or status seen by webhook and by scan is stored once.
    DELETE FROM activity WHERE id NOT IN (
        SELECT min(id) FROM activity GROUP BY repo_id, branch, head_sha);
    CREATE UNIQUE INDEX activity_push ON activity(repo_id, branch, head_sha);

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

    -- Current state: each workflow's last counted default-branch run, kept as runs
    -- arrive, so reading a thousand repositories does not scan every build.
    CREATE TABLE workflow_state (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        url TEXT,
        completed_at TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        event TEXT,
        attempt INTEGER NOT NULL,
        PRIMARY KEY (repo_id, workflow)
    );
    INSERT OR REPLACE INTO workflow_state (repo_id, workflow, status, url, completed_at,
    run_id, event, attempt)
    SELECT repo_id, workflow, status, url, completed_at, run_id, event, attempt FROM (
        SELECT *, row_number() OVER (PARTITION BY repo_id, workflow
            ORDER BY completed_at DESC, attempt DESC) AS rn
        FROM builds WHERE default_branch = 1 AND completed_at IS NOT NULL
        AND source != 'workflow_job' AND status NOT IN
        ('cancelled', 'skipped', 'neutral', 'stale', 'action_required'))
    WHERE rn = 1;
    """,
    # 5: issue activity, a sign of life for the activity score.
    """
    ALTER TABLE repositories ADD COLUMN last_issue_activity_at TEXT;
    """,
    # 6: flap detection counts an alert's recent state changes; a notice's lease
    # names the process that took it, so a successor can tell a dead one's leases.
    """
    ALTER TABLE alerts ADD COLUMN changes TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE outbox ADD COLUMN leased_by TEXT;
    """,
    # 7: a score reads a repository's last runs and coverage in index order (ties
    # on completion time included: no sort of every run), and its open alerts
    # without a scan of every repository's.
    """
    DROP INDEX builds_default;
    CREATE INDEX builds_default ON builds(repo_id, default_branch, completed_at, attempt);
    CREATE INDEX vulnerabilities_repo ON vulnerabilities(repo_id, state, severity);
    CREATE INDEX coverage_repo ON coverage(repo_id, at);
    """,
    # 8: a periodic sweep over every repository (the daily rescore) keeps its
    # place, so it runs in short writer turns and resumes after a restart.
    """
    CREATE TABLE sweeps (
        name TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL,  -- the last repository id done
        started_at TEXT NOT NULL,
        finished_at TEXT  -- NULL while it runs
    );
    """,
    # 9: the scan's ledger. Each repository's last scan (what its listing said then,
    # the ETags of its answers and what a 304 stands for) orders the next rounds and
    # makes rescanning an unchanged repository cost no rate limit; the scan's spending
    # in GitHub's current rate-limit window survives a restart.
    """
    CREATE TABLE scan_repos (
        repo_id INTEGER PRIMARY KEY,  -- GitHub's id
        full_name TEXT NOT NULL,
        pushed_at TEXT,  -- as the listing said when it was last scanned
        scanned_at TEXT NOT NULL,
        etags TEXT NOT NULL DEFAULT '{}',  -- request -> ETag
        facts TEXT NOT NULL DEFAULT '{}'  -- what an unchanged answer stands for
    );
    CREATE INDEX scan_repos_scanned ON scan_repos(scanned_at);
    CREATE TABLE scan_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 10: databases made from the first texts of migrations 1, 3 and 4 (edited
    # after release) brought to what the released texts make.
    _mend_edited_migrations,
    # 11: a notice remembers when the delivery that caused it was answered (the
    # alert-latency histogram), and the outbox's backlog per channel is read from
    # an index instead of every parked row.
    """
    ALTER TABLE outbox ADD COLUMN received_at TEXT;
    CREATE INDEX outbox_backlog ON outbox(status, channel);
    """,
    # 12: retention's index of which delivery decides each place of the derived
    # state, and a run's working sets (store/retention/).
    """
    CREATE TABLE retention_cells (
        cell INTEGER PRIMARY KEY,  -- a place in the derived state (hash of its key)
        delivery_id INTEGER NOT NULL,  -- the delivery deciding it, or the last touching a row
        value TEXT,  -- the greatest value so far, for a greatest-wins column
        row TEXT  -- a history row's key (JSON): the row goes with its last delivery
    );
    CREATE INDEX retention_cells_delivery ON retention_cells(delivery_id);
    CREATE TABLE retention_held (  -- history rows a run keeps: a kept delivery touches them
        run TEXT NOT NULL,
        cell INTEGER NOT NULL,
        PRIMARY KEY (run, cell)
    ) WITHOUT ROWID;
    CREATE TABLE retention_doomed (  -- old deliveries a run means to prune
        run TEXT NOT NULL,
        delivery_id INTEGER NOT NULL,
        cell INTEGER NOT NULL,  -- a history row it touches (0: the delivery itself)
        decides INTEGER NOT NULL,  -- its fact is what that row holds
        PRIMARY KEY (run, delivery_id, cell)
    ) WITHOUT ROWID;
    CREATE TABLE retention_rebase (  -- branches whose coverage changes need measuring again
        run TEXT NOT NULL,
        branch TEXT NOT NULL,  -- JSON [repo_id, branch]
        PRIMARY KEY (run, branch)
    ) WITHOUT ROWID;
    """,
    # 13: alert storms. A notice may name many alerts (notice_members); a group's
    # window gathers what follows its first notice into one (notice_groups); a notice
    # that waited for its channel's pace may be said by another ('merged'). The outbox
    # is rebuilt for its status check; its due rows are found per channel.
    """
    CREATE TABLE outbox_13 (
        id INTEGER PRIMARY KEY,
        alert_key TEXT,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,  -- firing, repeat, resolved, group, digest, test
        message TEXT NOT NULL,  -- the rendered Message, JSON (a group's: when claimed)
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sent', 'parked', 'merged')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        response TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        leased_by TEXT,
        received_at TEXT,
        group_key TEXT,  -- the alert group it speaks for; NULL: not grouped
        merged_into INTEGER  -- when merged: the notice that said it
    );
    INSERT INTO outbox_13 (id, alert_key, channel, kind, message, status, attempts,
        next_attempt_at, last_status, last_error, response, created_at, sent_at,
        leased_by, received_at)
    SELECT id, alert_key, channel, kind, message, status, attempts, next_attempt_at,
        last_status, last_error, response, created_at, sent_at, leased_by, received_at
    FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_13 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
    CREATE INDEX outbox_alert ON outbox(alert_key);
    CREATE INDEX outbox_channel_due ON outbox(status, channel, next_attempt_at);

    CREATE TABLE notice_members (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        alert_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        repo TEXT NOT NULL,
        state TEXT NOT NULL,  -- firing, repeat, resolved
        severity TEXT NOT NULL,
        what TEXT NOT NULL,  -- one line, marked text (notify/escape.py)
        url TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX notice_members_outbox ON notice_members(outbox_id, id);
    CREATE INDEX notice_members_alert ON notice_members(alert_key);

    CREATE TABLE notice_groups (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        group_key TEXT NOT NULL,
        window_s REAL NOT NULL,
        window_until TEXT NOT NULL,  -- until then, what comes is gathered
        opener TEXT,  -- the alert whose notice opened the window: its own news still goes
        gathering INTEGER,  -- the pending notice gathering it
        UNIQUE (channel, group_key)
    );

    ALTER TABLE alerts ADD COLUMN group_key TEXT;
    CREATE INDEX alerts_group ON alerts(group_key, notified_firing) WHERE group_key IS NOT NULL;
    """,
    # 14: every repository's whole dependency graph, from GitHub's SBOM
    # (store/dependencies.py), the repositories whose graph a push moved, and
    # heartbeats' run times.
    """
    CREATE TABLE dependency_graphs (
        repo_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
        state TEXT NOT NULL,  -- ok, or disabled: GitHub has no graph for it
        root TEXT,  -- the repository's own SPDX id
        packages INTEGER NOT NULL,
        truncated INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        read_at TEXT NOT NULL
    );
    CREATE TABLE dependency_packages (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        spdx_id TEXT NOT NULL,
        ecosystem TEXT,
        name TEXT NOT NULL,
        package_key TEXT NOT NULL,  -- the name as alerts and graphs agree on it
        version TEXT,
        PRIMARY KEY (repo_id, spdx_id)
    );
    CREATE INDEX dependency_packages_key ON dependency_packages(package_key, ecosystem);
    CREATE TABLE dependency_edges (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        parent TEXT NOT NULL,
        child TEXT NOT NULL,
        PRIMARY KEY (repo_id, parent, child)
    );
    CREATE TABLE graphs_wanted (
        repo_id INTEGER PRIMARY KEY,
        wanted_at TEXT NOT NULL
    );

    -- A heartbeat's /start: the next success or failure measures its run time.
    ALTER TABLE summary_items ADD COLUMN started_at TEXT;
    ALTER TABLE summary_items ADD COLUMN run_seconds REAL;
    """,
    # 15: every redelivery pulsehook asked GitHub for, and what came of it
    # (store/redeliveries.py), so a missed delivery is asked for once.
    """
    CREATE TABLE redelivery_requests (
        guid TEXT PRIMARY KEY,
        hook_id INTEGER NOT NULL,
        owner TEXT NOT NULL,
        repo TEXT,  -- NULL: an organisation's hook
        event TEXT,
        delivered_at TEXT NOT NULL,  -- GitHub's first attempt
        outcome TEXT NOT NULL,  -- requested, failed, recovered, expired, abandoned
        asks INTEGER NOT NULL,
        delivery_id INTEGER,  -- the attempt last asked to be redelivered
        first_asked_at TEXT,
        last_asked_at TEXT,
        answer INTEGER,  -- GitHub's HTTP status to the last request (0: none came)
        next_ask_at TEXT,
        settled_at TEXT,
        error TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX redelivery_requests_updated ON redelivery_requests(updated_at);
    CREATE INDEX redelivery_requests_open ON redelivery_requests(outcome)
        WHERE outcome IN ('requested', 'failed');
    """,
    # 16: scheduled workflows watched from their files (implicit items), and what an
    # [[expect]] overrides of them; a push that changed a workflow file asks for the
    # repository's workflows again.
    """
    ALTER TABLE summary_items ADD COLUMN implicit_schedule TEXT;  -- the file's crons
    ALTER TABLE summary_items ADD COLUMN implicit_grace_s INTEGER;
    ALTER TABLE summary_items ADD COLUMN source TEXT;  -- the workflow file, for an implicit item
    ALTER TABLE summary_items ADD COLUMN declared_schedule TEXT;
    ALTER TABLE summary_items ADD COLUMN declared_grace_s INTEGER;  -- NULL: not given
    ALTER TABLE summary_items ADD COLUMN ignored INTEGER NOT NULL DEFAULT 0;  -- ignore = true
    ALTER TABLE summary_items ADD COLUMN channels TEXT;  -- an [[expect]]'s, JSON; NULL: the rule's
    ALTER TABLE summary_items ADD COLUMN tz TEXT;  -- the schedule's zone; NULL: the summary's
    UPDATE summary_items SET declared_schedule = schedule, declared_grace_s = grace_s
        WHERE declared = 1;
    CREATE INDEX summary_items_source ON summary_items(owner, repo, source)
        WHERE source IS NOT NULL;
    CREATE TABLE workflows_wanted (
        repo_id INTEGER PRIMARY KEY,
        wanted_at TEXT NOT NULL
    );
    """,
    # 17: the message a Slack app posted for each alert's firing notice, per channel,
    # so the alert's later notices reply in its thread and edit it (store/threads.py).
    """
    CREATE TABLE notice_threads (
        channel TEXT NOT NULL,  -- pulsehook's channel name
        alert_key TEXT NOT NULL,
        posted TEXT NOT NULL,  -- the provider's id of the message: "<channel id> <ts>"
        posted_at TEXT NOT NULL,
        PRIMARY KEY (channel, alert_key)
    );
    """,
]

# Tables rebuilt from the stored deliveries by ``pulsehook replay``.
DERIVED_TABLES = (
    "dependency_edges",
    "dependency_packages",
    "dependency_graphs",
    "workflow_state",
    "health",
    "activity",
    "dependency_prs",
    "coverage",
    "vulnerabilities",
    "builds",
    "repositories",
    "hooks",
)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations not yet applied; return the schema version.

    Each runs in its own ``BEGIN IMMEDIATE`` transaction that reads the version
    again first: of processes starting together on one file, one applies a
    migration while the others wait for the lock, then find it applied.
    ``migrations`` is the list to apply (tests build earlier versions with it).
    """
    version = _version(conn)
    if version >= len(migrations):
        return version  # the usual start: no write lock taken
    waits = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute(f"PRAGMA busy_timeout = {max(waits, MIGRATION_WAIT_MS)}")
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = _version(conn)
                if version < len(migrations):
                    _apply(conn, migrations[version])
                    conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if version >= len(migrations):
                return version
            log.info("schema migration %d applied", version + 1)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {waits}")


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    """Run one migration inside the caller's transaction."""
    if isinstance(migration, str):
        # Statement by statement: executescript would commit the transaction first.
        for statement in statements(migration):
            conn.execute(statement)
    else:
        migration(conn)


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, each whole (``;`` in strings and comments kept)."""
    pieces = script.split(";")
    statement = ""
    for piece in pieces[:-1]:
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    statement += pieces[-1]
    if statement.strip():
        yield statement


# Rebuilds workflow_state from builds (after a bulk load).
WORKFLOW_STATE_SQL = """
INSERT OR REPLACE INTO workflow_state (repo_id, workflow, status, url, completed_at,
    run_id, event, attempt)
    SELECT repo_id, workflow, status, url, completed_at, run_id, event, attempt FROM (
        SELECT *, row_number() OVER (PARTITION BY repo_id, workflow
            ORDER BY completed_at DESC, attempt DESC) AS rn
        FROM builds WHERE default_branch = 1 AND completed_at IS NOT NULL
        AND source != 'workflow_job' AND status NOT IN
        ('cancelled', 'skipped', 'neutral', 'stale', 'action_required'))
    WHERE rn = 1
"""
