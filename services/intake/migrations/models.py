"""The tables intake owns besides the shared ones (importing the module registers them)."""

import services.intake.read_model  # noqa: F401

TABLES = ["service_requests", "open_serials"]
