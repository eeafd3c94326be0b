"""The garbage collector's pace in a long-running service: start-up's heap frozen, and
collections spaced for a service's heap rather than a script's.

CPython collects its youngest objects every 700 net allocations and the older generations in
step. A service holds a large heap for its life (routes, schemas, models, pools), and the
verifier's re-verification cycle keeps thousands of domains in flight at once: at that pace
the collector kept walking all of it, stalling the event loop for up to half a second, long
enough for a caller of the SES budget to miss its slot (the cycle over 10,000 domains in ten
accounts ran at 1.39 times its floor; 1.12 with collections spaced as here).
"""

from __future__ import annotations

import gc

from domainflow.kit.settings import CollectorSettings


def settle_collector(settings: CollectorSettings) -> None:
    """Once a service has started: freeze what start-up built (it lives as long as the
    process; no collection need look at it again) and space collections as `settings` say."""
    # Once per process: frozen objects are never freed, and a test process builds many apps.
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    gc.set_threshold(settings.young_threshold, settings.middle_threshold, settings.old_threshold)
