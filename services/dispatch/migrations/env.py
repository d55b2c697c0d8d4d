from alembic import context

from shared.migrations import run_env

run_env(context)
