"""The tables warranty owns besides the shared ones (importing the modules registers them)."""

import services.warranty.read_model  # noqa: F401
import services.warranty.timeline  # noqa: F401

TABLES = ["warranty_products", "warranty_policies", "warranty_swaps", "warranty_claims", "warranty_requests",
          "warranty_jobs", "warranty_timeline"]
