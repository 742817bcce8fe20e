# The seed's rules, verbatim. Parsed with ast.literal_eval — never executed.
ALERT_RULES = [
    {"name": "critical_vulnerability",
     "condition": "vulnerability.severity == 'critical'",
     "channels": ["slack", "email"], "frequency": "immediate"},
    {"name": "build_failure",
     "condition": "build.status == 'failure' and build.branch == 'main'",
     "channels": ["slack"], "frequency": "immediate"},
    {"name": "coverage_drop", "condition": "coverage.delta < -5",
     "channels": ["slack"], "frequency": "daily_digest"},
]
WEBHOOKS = {"slack": "${SLACK_WEBHOOK_URL}", "discord": "${DISCORD_WEBHOOK_URL}"}
