"""`python -m shared.auth mint --roles admin` (or `--roles dealer --dealer-id D1`): print a token."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from shared.auth import Role, mint_token
from shared.settings import ServiceSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.auth", description="Mint Servicetrail tokens")
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a signed JWT")
    mint.add_argument("--roles", required=True, help=f"comma separated, of: {', '.join(r.value for r in Role)}")
    mint.add_argument("--sub", default=None, help="subject (a technician's id for technicians)")
    mint.add_argument("--dealer-id", default=None)
    mint.add_argument("--hours", type=float, default=12.0)
    args = parser.parse_args(argv)

    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in Role.__members__]
    if unknown:
        parser.error(f"unknown role(s): {', '.join(unknown)}")
    if "dealer" in roles and not args.dealer_id:
        parser.error("--roles dealer needs --dealer-id")
    settings = ServiceSettings()
    subject = args.sub or (f"dealer:{args.dealer_id}" if args.dealer_id else roles[0])
    print(
        mint_token(
            settings.auth_secret,
            subject=subject,
            roles=roles,
            dealer_id=args.dealer_id,
            ttl=timedelta(hours=args.hours),
            issuer=settings.auth_issuer,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
