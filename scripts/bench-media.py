"""make bench-media: upload throughput through the gateway to the local store, then to a local
Cloudinary-compatible server (Tests/e2e/fake_cloudinary.py, which checks signatures), with the
release media-bench. Needs the services running (make up). The media service is restarted with
Cloudinary settings for the second part and restored afterwards (the one this script started is
stopped by its pid)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from fake_cloudinary import FakeCloudinary  # noqa: E402

SERVICES = ROOT / "scripts" / "services.sh"
BENCH = ROOT / ".build" / "release" / "media-bench"
ADMIN = f"http://127.0.0.1:{os.environ.get('MEDIA_ADMIN_PORT', '9103')}/readyz"


def ready(timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urlopen(ADMIN, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("media did not become ready")


def main() -> None:
    config = os.environ.get("MEDIA_BENCH_CONFIG", "debug")
    subprocess.run([str(BENCH)], env=dict(os.environ, MEDIA_BENCH_LABEL="local store"), check=True)
    with FakeCloudinary(cloud_name="bench-cloud") as cloud:
        subprocess.run(["bash", str(SERVICES), "stop", "media"], check=True, capture_output=True)
        env = dict(os.environ, CLOUDINARY_URL=cloud.cloudinary_url(), CLOUDINARY_UPLOAD_PREFIX=cloud.base_url,
                   ENV_FILE="/dev/null")
        log = open(ROOT / ".run" / "logs" / "media-bench-cloudinary.log", "w")
        media = subprocess.Popen([str(ROOT / ".build" / config / "media")], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready()
            subprocess.run([str(BENCH)], env=dict(os.environ, MEDIA_BENCH_LABEL="local Cloudinary-compatible server"),
                           check=True)
            print(f"  (the fake Cloudinary server checked {len(cloud.uploads_seen())} signed uploads)")
        finally:
            media.terminate()
            media.wait(timeout=30)
            subprocess.run(["bash", str(SERVICES), "start", config, "media"], check=True, capture_output=True)


if __name__ == "__main__":
    main()
