# The seed's rules, in the seed's literal Python form (parsed with
# ast.literal_eval, never executed), with one change: build_failure watches each
# repository's default branch whatever its name. The seed's own condition,
# "build.status == 'failure' and build.branch == 'main'", is still accepted as
# written, but misses every repository whose default branch is master or trunk.
ALERT_RULES = [
    {"name": "critical_vulnerability",
     "condition": "vulnerability.severity == 'critical'",
     "channels": ["slack", "email"], "frequency": "immediate"},
    {"name": "build_failure",
     "condition": "build.status == 'failure' and build.default_branch",
     "channels": ["slack"], "frequency": "immediate"},
    {"name": "coverage_drop", "condition": "coverage.delta < -5",
     "channels": ["slack"], "frequency": "daily_digest"},
]
WEBHOOKS = {"slack": "${SLACK_WEBHOOK_URL}", "discord": "${DISCORD_WEBHOOK_URL}"}
