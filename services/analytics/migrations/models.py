"""The tables analytics owns besides the shared ones (importing the module registers them).

The projection's own tables (`analytics_g<N>_events`, `_requests`, `_revisits`) are not here: they are data, a
generation the service creates at start and each rebuild creates anew and drops when superseded."""

import services.analytics.tables  # noqa: F401

TABLES = ["analytics_state", "analytics_active_alerts", "analytics_alert_history"]
