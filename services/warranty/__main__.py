"""`python -m services.warranty`: serve warranty with uvicorn on $PORT (default 8003)."""

import uvicorn

from services.warranty.app import WarrantySettings, create_app


def main() -> None:
    settings = WarrantySettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
