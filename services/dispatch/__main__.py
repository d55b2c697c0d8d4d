"""`python -m services.dispatch`: serve dispatch with uvicorn on $PORT (default 8002)."""

import uvicorn

from services.dispatch.app import DispatchSettings, create_app


def main() -> None:
    settings = DispatchSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
