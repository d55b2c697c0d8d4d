"""`python -m services.intake`: serve intake with uvicorn on $PORT (default 8001)."""

import uvicorn

from services.intake.app import IntakeSettings, create_app


def main() -> None:
    settings = IntakeSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
