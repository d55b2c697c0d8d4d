"""`python -m services.analytics`: serve analytics with uvicorn on $PORT (default 8005)."""

import uvicorn

from services.analytics.app import AnalyticsSettings, create_app


def main() -> None:
    settings = AnalyticsSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
