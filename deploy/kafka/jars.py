"""The Kafka broker's runtime jars, collected by Maven from the pinned pom.xml (the only place the version lives)."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

KAFKA_DIR = Path(__file__).resolve().parent
POM = KAFKA_DIR / "pom.xml"
LIBS_DIR = KAFKA_DIR / "libs"
_MARKER = LIBS_DIR / ".resolved"


def _pom_property(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    value = ET.parse(POM).getroot().findtext(f"m:properties/m:{name}", namespaces=ns)
    if not value:
        raise RuntimeError(f"{POM} has no <{name}> property")
    return value.strip()


KAFKA_VERSION = _pom_property("kafka.version")
"""The pinned Kafka version; pom.xml is its only source."""


def _marker_text() -> str:
    return f"kafka {KAFKA_VERSION}\npom {hashlib.sha256(POM.read_bytes()).hexdigest()}\n"


def _jars_resolved() -> bool:
    try:
        header, _, jars = _MARKER.read_text().partition("jars\n")
    except OSError:
        return False
    return header == _marker_text() and all((LIBS_DIR / jar).is_file() for jar in jars.split())


def ensure_jars() -> Path:
    """Collect the broker's runtime jars into LIBS_DIR unless the marker says they already match the pom."""
    if _jars_resolved():
        return LIBS_DIR
    LIBS_DIR.mkdir(parents=True, exist_ok=True)
    with open(LIBS_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving right now
        if _jars_resolved():
            return LIBS_DIR
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("Maven (mvn) is needed to fetch the Kafka jars; install it or set KAFKA_BOOTSTRAP")
        _MARKER.unlink(missing_ok=True)
        for stale in LIBS_DIR.glob("*.jar"):
            stale.unlink()
        # The output directory must be absolute: with -f, Maven resolves relative paths against the pom's dir.
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={LIBS_DIR}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        jars = sorted(path.name for path in LIBS_DIR.glob("*.jar"))
        if result.returncode != 0 or not any(jar.startswith("kafka_2.13-") for jar in jars):
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        _MARKER.write_text(_marker_text() + "jars\n" + "\n".join(jars) + "\n")
    return LIBS_DIR
