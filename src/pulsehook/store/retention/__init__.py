"""Retention: deliveries and history older than ``retention_days`` go; the state stays.

An old delivery goes unless it decides something still in the state (see
``index``), so ``pulsehook replay`` still rebuilds exactly the state the service
has. History rows — builds, pushes, coverage figures, closed alerts and
pull requests — go with the deliveries that wrote them, unless the current state
reads them (a repository's last ten default-branch runs for its score, the newest
coverage figure per branch and the one its change is measured against, the newest
alert and pull request per repository) or a kept or recent delivery touches them:
replay makes nothing that is not there. The oldest coverage figure left on a
branch then measures its change against what is left, as replay will. Deliveries
pending or in error, and all received within the retention (at least GitHub's
three days of redeliveries, which keep their guid), stay.

Alert history goes by age too, except what an open alert, an unsent or parked
notice, an active silence or a pending digest still needs.

A run takes short writer turns (``Pruner.step``) through phases kept in the
``sweeps`` table, so any process carries it on after a restart:

- ``judge``: each old delivery is kept (what it touches is held) or doomed, with
  the history rows it touches and whether it decides them;
- ``settle``: a doomed delivery that decides a held row, or one a recent delivery
  touched since, is kept after all, holding what it touches — until a pass keeps
  none (a delivery judged later may hold a row an earlier one decides);
- ``delete``: each doomed delivery goes with the history rows only it decided, in
  one transaction (a delivery processed meanwhile finds them gone, as replay will);
- ``rows``: history rows no delivery is left for; ``rebase``: coverage changes on
  the branches that lost figures; ``tables``: alert history; ``vacuum``: with
  ``auto_vacuum = INCREMENTAL`` only (otherwise freed pages are reused before the
  file grows).

Modules: ``schema`` (the tables, the shortest retention), ``index`` (what each
delivery decides), ``run`` (a run, its phases over deliveries), ``history`` (what
the current state reads of history; derived history; coverage changes), ``alerts``
(alert history).
"""

from __future__ import annotations

from .run import PHASES, Counts, Pruner
from .schema import MIN_DAYS, check_days

__all__ = ["MIN_DAYS", "PHASES", "Counts", "Pruner", "check_days"]
