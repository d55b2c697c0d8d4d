"""`python -m services.complaints`: serve complaints with uvicorn on $PORT (default 8004)."""

import uvicorn

from services.complaints.app import ComplaintsSettings, create_app


def main() -> None:
    settings = ComplaintsSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
