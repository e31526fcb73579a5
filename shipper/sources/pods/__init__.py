"""Pod-log source: the logs of every container of the running and finished pods of one namespace
(a finished pod is read to its end, whether or not a pass saw it running).

Modules: source.py reads the logs, api.py talks to the Kubernetes API, position.py is a
container's cursor position and the mark, limits.py the sizes it reads by.

Position, per `<pod>/<container>`: the pod uid, the restart count already handled, the kubelet
timestamp (ns) of the newest shipped line and how many lines *with exactly that timestamp* were
shipped, and a mark naming the last shipped line in stream order: its timestamp and which of the
lines with exactly that timestamp it is (`mark_ts`, `mark_n`). Logs are read with
`timestamps=true&follow=false&sinceTime=...` by a raw call (the Python client has no
`since_time`), streamed line by line.

Resuming: stdout and stderr are timestamped by separate readers, so a line can come later in the
log than another yet carry an older timestamp. The kubelet filters `sinceTime` (one-second
precision) line by line, so a read starts `PodLimits.reorder_slack_seconds` before the mark's second: the
mark itself and any later line up to that much older are served. Every line with the mark's
timestamp is served, so counting them finds the mark again; everything after it is new and
shipped, whatever its timestamp. Until the mark is found (or when a read has none, or it was
rotated out of the log), a line counts as shipped when it is older than the newest shipped
timestamp or among the first lines at exactly that timestamp; the first line that is not starts
the shipping, as everything after it is new too.

Each read is checked against the instance the listing showed: before the first batch of a read is
yielded, the pod is read again (one GET, only for a read that returned lines) and if its uid, the
container's `restartCount` or its `containerID` changed since the listing, the read is discarded and
the container is left for the next pass with its position untouched. Otherwise a restart (or a pod
re-created under the same name) between the listing and the log read would ship the *new* instance's
lines as the listed one's and move the position past them, and the next pass, seeing the grown
count, would drop the previous instance's unshipped tail as already shipped. A stream opened on one
instance keeps reading that instance's file, so one check per read suffices; a change after the read
opened only costs a read again. Limit: the kubelet serves logs from its own view of the pod, which
reaches the API a moment later; a restart whose status the API has not received by the time the read
has finished its first batch is not seen (the check is made as late as possible to keep that window
small).

Restarts: when `restartCount` grew, what the previous instance wrote after the position is read
with `previous=true` before the new instance. The kubelet keeps only the last terminated
instance: if the count grew by more than one, the instances in between are lost and counted
(`restarts_missed`). A pod that is no longer listed keeps its position for
`pod_grace_seconds` (it may come back, or the listing may be partial), then the position is
dropped. A pod with the same name but a new uid starts from the beginning of its log.

Finding the mark counts only the lines with its timestamp, so it is exact. Setting it needs a count
per timestamp for the whole read; past `PodLimits.tracked_timestamps` distinct timestamps, counts more than
the slack below the newest are forgotten, and a line at such a timestamp gets none: the last
shipped line that has a count is the mark then, and the lines after it are sent again next read
(Loki drops repeated entries).

Limits: a line more than `PodLimits.reorder_slack_seconds` older than the mark, coming after it, is not
served and so not shipped; nor is one that comes before the first new line of a read without its
mark. A rotation that cuts through the lines sharing the mark's timestamp shifts the count.

403 and 404 answers (listing or one container's log) are counted outcomes
(`shipper_records_skipped{reason=...}` and `outcomes`), never a crash of the run; other API
failures of the listing, and a connection to the API that fails (also in the middle of a log),
raise SourceError: the batches before it are committed, the rest is read again next run.
"""

from __future__ import annotations

from shipper.sources.pods.api import build_api_client, since_time
from shipper.sources.pods.limits import PodLimits
from shipper.sources.pods.source import PodSource

__all__ = ["PodLimits", "PodSource", "build_api_client", "since_time"]
