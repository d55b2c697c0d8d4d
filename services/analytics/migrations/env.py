import re

from alembic import context

from shared.migrations import run_env

_GENERATION = re.compile(r"^analytics_g\d+_")
_configure = context.configure


def _not_a_generation(name, kind, parent) -> bool:
    return not (kind == "table" and _GENERATION.match(name or ""))


def _configure_without_generations(**options):
    """The projection's generation tables come and go with rebuilds: they are no drift (`check` on a live DB)."""
    options.setdefault("include_name", _not_a_generation)
    _configure(**options)


context.configure = _configure_without_generations
run_env(context)
