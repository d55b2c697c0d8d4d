"""`python -m services.intake`: serve intake with uvicorn on $PORT (default 8001)."""

from services.intake.app import IntakeSettings, create_app
from shared.runtime import serve

if __name__ == "__main__":
    serve(create_app, IntakeSettings())
