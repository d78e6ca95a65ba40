"""Take the README's dashboard screenshots: run `lethe demo` on a scratch var directory, add a
few requests waiting for an officer, then photograph each page with the system's chromium."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_demo(port: int, var_dir: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")} | {
        "LETHE_VAR_DIR": str(var_dir),
        "LETHE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    demo = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "demo", "--port", str(port)],
        cwd=var_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group: the demo, its server and their worker
    )
    assert demo.stdout is not None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            raise RuntimeError("the demo stopped before it finished")
        print(line, end="")
        if "Demo API key:" in line:
            key = demo.stdout.readline().strip()
            return demo, key
    raise RuntimeError("the demo did not finish in time")


def _stop(demo: subprocess.Popen[str]) -> None:
    """Ctrl-C to the demo's process group (the demo, its server, their worker), then whatever
    of the group is still there."""
    os.killpg(demo.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        demo.wait(timeout=60)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(demo.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(5)


def _officer_queue(base: str, key: str) -> dict[str, str]:
    """Requests waiting for an approval, a due date extended, a failing webhook endpoint."""
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    portal = admin.post(
        "/v1/clients",
        json={
            "name": "OneTrust portal",
            "scopes": ["requests:write", "requests:read"],
            "requires_approval": True,
        },
    ).json()
    admin.post("/v1/clients", json={"name": "Privacy team (viewer)", "scopes": ["dashboard"]})
    held = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {portal['key']}"}, timeout=30
    )
    ids = {}
    for n, reference in enumerate(("DSR-2041", "DSR-2042", "DSR-2043")):
        body = {
            "identities": [{"type": "email", "value": f"someone-{n}@example.org"}],
            "reference": reference,
        }
        ids[reference] = held.post("/v1/erasure-requests", json=body).json()["id"]
    admin.post(
        f"/v1/erasure-requests/{ids['DSR-2042']}/extend",
        json={"months": 1, "reason": "records held by three processors"},
    )
    held.post(
        "/v1/webhook-endpoints",
        json={"url": f"http://127.0.0.1:{_free_port()}/hooks", "events": ["*"]},
    )
    return ids


def _shoot(page: Page, out: Path, name: str, *, full: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=full)
    print(f"  {name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="lethe-screens-") as scratch:
        demo, key = _start_demo(port, Path(scratch))
        try:
            held = _officer_queue(base, key)
            completed = httpx.get(
                f"{base}/v1/erasure-requests?status=completed",
                headers={"Authorization": f"Bearer {key}"},
            ).json()["items"]
            done_id = completed[-1]["id"]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox"]
                )
                context = browser.new_context(
                    base_url=base, viewport={"width": 1280, "height": 860}
                )
                page = context.new_page()
                page.goto("/dashboard/sign-in")
                _shoot(page, args.out, "sign-in", full=False)
                page.get_by_label("API key").fill(key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/dashboard/requests")
                _shoot(page, args.out, "queue")
                page.goto(f"/dashboard/requests/{held['DSR-2041']}")
                _shoot(page, args.out, "request-pending")
                page.goto(f"/dashboard/requests/{done_id}")
                _shoot(page, args.out, "request-completed")
                page.goto(f"/dashboard/requests/{done_id}/evidence")
                _shoot(page, args.out, "evidence")
                page.goto("/dashboard/models")
                _shoot(page, args.out, "models")
                page.goto("/dashboard/audit?verify=1")
                _shoot(page, args.out, "audit")
                page.goto("/dashboard/webhooks")
                _shoot(page, args.out, "webhooks")
                page.goto("/dashboard/clients")
                _shoot(page, args.out, "clients")
                phone = browser.new_context(
                    base_url=base,
                    viewport={"width": 390, "height": 844},
                    device_scale_factor=2,
                    is_mobile=True,
                    storage_state=context.storage_state(),
                )
                small = phone.new_page()
                small.goto("/dashboard/requests")
                _shoot(small, args.out, "phone-queue", full=False)
                small.goto(f"/dashboard/requests/{held['DSR-2041']}")
                _shoot(small, args.out, "phone-request", full=False)
                browser.close()
        finally:
            _stop(demo)


if __name__ == "__main__":
    main()
