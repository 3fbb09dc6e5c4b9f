"""What the store checks when it opens: SQLite's own quick check, interrupted uploads, and the
evidence photos of every open report.

Why at start: a power cut can leave an upload half done and a photo folder can be restored or
damaged while the device is off; both must be found before the device decides anything.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge_agent.errors import StoreError
from edge_agent.store.health import quick_check

if TYPE_CHECKING:
    from edge_agent.store.store import Store

log = logging.getLogger(__name__)


def check_at_start(store: Store) -> list[str]:
    """Start-up check: SQLite's quick_check, then every open report's photos on disk.

    A candidate whose photo is gone cannot become evidence: it is expired (and returned
    in the list of repairs). A confirmed report whose photo is gone or altered is evidence
    lost: that raises StoreError, since only a person can decide what to do.
    """
    quick_check(store.db, store.db_path)
    store.photos.remove_temporaries()
    repairs: list[str] = []
    with store.transaction():
        reset = store.db.execute("UPDATE outbox SET state = 'pending' "
                                 "WHERE state = 'uploading'").rowcount
        if reset:
            repairs.append(f"{reset} interrupted upload(s) queued again")
    rows = store.db.query(
        "SELECT r.report_id, r.state, s.photo_sha256 FROM reports r "
        "JOIN sightings s ON s.id IN (r.first_sighting_id, r.confirming_sighting_id) "
        "WHERE r.state IN ('candidate', 'confirmed')")
    for row in list(rows):
        if store.photos.verify(row["photo_sha256"]):
            continue
        path = store.photos.path(row["photo_sha256"])
        if row["state"] == "confirmed":
            raise StoreError(f"confirmed report {row['report_id']} has lost its evidence "
                             f"photo {path} (missing or altered); restore the photo folder "
                             f"{store.photos.root} from a backup before running gotcha")
        with store.transaction():
            store.expire(row["report_id"], "evidence photo missing or damaged at start-up")
        repairs.append(f"candidate {row['report_id']} expired: photo {path} missing")
    for line in repairs:
        log.warning("store check: %s", line)
    return repairs
