"""Page weight: bytes a phone transfers for the home page, the biggest category and a product page,
on the first visit (empty cache) and on a repeat visit (same browser context), measured in Debian's
chromium through Playwright and the DevTools protocol: the sum of `encodedDataLength` of every
`Network.loadingFinished` event (bytes on the wire: headers + body as sent, compressed or not; 0
for what the cache answered). Beside it, the decoded size (`Network.dataReceived` dataLength), the
bytes the same resources would cost uncompressed, as the baseline of the same run.

The real app (gunicorn, sync workers, through bench/_wsgi.py as bench/storefront.py does) serves a
fresh SQLite database in a temporary folder seeded with the demo data; unless --no-photos, every
listed product gets a synthetic 1200x900 photo stored the way an upload is (original, thumbnail
and card thumbnails), so the cards load pictures as they will in production.

    .venv/bin/python bench/page_weight.py [--workers 2] [--no-photos] [--desktop] [--scroll]
                                         [--requests]

Prints figures and the issue's goals (home <= 150 KB first, <= 15 KB repeat); never fails because a
page is heavy, only when a page cannot be loaded.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from PIL import Image, ImageFilter
from playwright.sync_api import Browser, BrowserContext, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from market.catalog.models import Product, ProductImage, ProductStatus
from market.extensions import db
from market.uploads import store_image

# bench/ is not a package: reuse the storefront bench's app, seeding, paths and gunicorn runner.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from storefront import build_app, gunicorn, pick_paths, seed

CHROMIUM = Path("/usr/bin/chromium")
# As tests/e2e/conftest.py launches it (never `playwright install`).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP = {"viewport": {"width": 1366, "height": 900}, "device_scale_factor": 1}
GOAL_FIRST = 150 * 1024
GOAL_REPEAT = 15 * 1024
BIGGEST = 6
KIND_ORDER = ["Document", "Stylesheet", "Script", "Image", "Font", "Other"]


@dataclass
class Visit:
    page: str
    visit: str
    wire: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    decoded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requests: int = 0
    from_cache: int = 0
    # (bytes on the wire, status and encoding, path) of each request
    resources: list[tuple[int, str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.wire.values())

    @property
    def total_decoded(self) -> int:
        return sum(self.decoded.values())


# -- photos ----------------------------------------------------------------------------------------
def synthetic_photo(seed_value: int, size: tuple[int, int] = (1200, 900)) -> bytes:
    """A picture that compresses about as badly as a photo: a coloured gradient with shapes,
    grain and a little blur (flat colours would flatter the thumbnails)."""
    rng = random.Random(seed_value)
    channels = [
        Image.linear_gradient("L").rotate(rng.randrange(360)).resize(size) for _ in range(3)
    ]
    image = Image.merge("RGB", channels)
    noise = Image.effect_noise(size, 56).convert("RGB")
    # Tuned so that the card thumbnails weigh what phone photos of produce do (WebP q75: about
    # 6 KB at 320 px, 18 KB at 480 px, 33 KB at 640 px).
    image = Image.blend(image, noise, 0.3).filter(ImageFilter.GaussianBlur(0.8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def add_photos(app: Flask) -> int:
    """One photo per listed product that has none, stored as an upload would be."""
    with app.app_context():
        products = db.session.scalars(
            select(Product)
            .where(Product.status == ProductStatus.LISTED)
            .options(selectinload(Product.images))
        ).all()
        added = 0
        for product in products:
            if product.images:
                continue
            upload = FileStorage(io.BytesIO(synthetic_photo(product.id)), filename="photo.jpg")
            stored = store_image(upload, f"products/{product.coop_id}")
            product.images.append(
                ProductImage(
                    path=stored.path,
                    thumb_path=stored.thumb_path,
                    width=stored.width,
                    height=stored.height,
                    position=0,
                )
            )
            added += 1
        db.session.commit()
    return added


# -- chromium --------------------------------------------------------------------------------------
def measure(context: BrowserContext, url: str, label: str, visit: str, scroll: bool) -> Visit:
    """Load `url` in a new tab of `context` and sum what the network carried until it was idle
    (lazy pictures load by themselves when near the screen; `scroll` reads to the end)."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    result = Visit(label, visit)
    kinds: dict[str, str] = {}
    urls: dict[str, str] = {}
    statuses: dict[str, str] = {}

    def on_request(event: dict) -> None:
        kinds[event["requestId"]] = event.get("type") or "Other"
        urls[event["requestId"]] = event["request"]["url"]

    def on_response(event: dict) -> None:
        response = event["response"]
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        statuses[event["requestId"]] = (
            f"{response['status']} {headers.get('content-encoding', '-')}"
        )

    def on_data(event: dict) -> None:
        kind = kinds.get(event["requestId"], "Other")
        result.decoded[kind if kind in KIND_ORDER else "Other"] += event["dataLength"]

    def on_finished(event: dict) -> None:
        kind = kinds.get(event["requestId"], "Other")
        result.wire[kind if kind in KIND_ORDER else "Other"] += int(event["encodedDataLength"])
        result.requests += 1
        url = urls.get(event["requestId"], "?").split("/", 3)[-1]
        status = statuses.get(event["requestId"], "cache")
        result.resources.append((int(event["encodedDataLength"]), status, f"/{url}"))

    def on_cached(event: dict) -> None:
        result.from_cache += 1

    def on_failed(event: dict) -> None:
        if not event.get("canceled"):
            result.failed.append(f"{event.get('errorText')} ({event['requestId']})")

    cdp.on("Network.requestWillBeSent", on_request)
    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.dataReceived", on_data)
    cdp.on("Network.loadingFinished", on_finished)
    cdp.on("Network.requestServedFromCache", on_cached)
    cdp.on("Network.loadingFailed", on_failed)
    cdp.send("Network.enable")
    response = page.goto(url, wait_until="networkidle")
    if response is None or response.status != 200:
        result.failed.append(f"{url} answered {response.status if response else 'nothing'}")
    if scroll:
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_load_state("networkidle")
    cdp.detach()
    page.close()
    return result


def run(
    browser: Browser, base: str, paths: dict[str, str], device: dict, scroll: bool
) -> list[Visit]:
    visits = []
    for label, path in paths.items():
        context = browser.new_context(
            base_url=base, locale="zh-CN", timezone_id="Asia/Shanghai", **device
        )
        try:
            visits.append(measure(context, base + path, label, "first", scroll))
            visits.append(measure(context, base + path, label, "repeat", scroll))
        finally:
            context.close()
    # A buyer's usual path: home, then a category, then a product, in one context.
    context = browser.new_context(base_url=base, locale="zh-CN", **device)
    try:
        measure(context, base + paths["home"], "home", "warm-up", scroll)
        for label in ("category", "product"):
            visits.append(measure(context, base + paths[label], label, "after home", scroll))
    finally:
        context.close()
    return visits


def kb(size: int) -> str:
    return f"{size / 1024:.1f}"


def report(visits: list[Visit], requests: bool) -> None:
    if requests:
        for v in visits:
            print(f"{v.page} {v.visit}:")
            for size, status, url in v.resources:
                print(f"  {size:>8} B  {status:<10} {url}")
        print()
    kinds = [k for k in KIND_ORDER if any(v.wire.get(k) for v in visits)]
    header = f"{'page':<9} {'visit':<11} {'reqs':>4} {'KB sent':>8} {'KB decoded':>10} {'ratio':>6}"
    print(header + "".join(f" {k[:10]:>10}" for k in kinds))
    for v in visits:
        ratio = v.total / v.total_decoded if v.total_decoded else 0.0
        row = (
            f"{v.page:<9} {v.visit:<11} {v.requests:>4} {kb(v.total):>8} "
            f"{kb(v.total_decoded):>10} {ratio:>6.2f}"
        )
        print(row + "".join(f" {kb(v.wire.get(k, 0)):>10}" for k in kinds))
    print("(KB sent: encodedDataLength summed, headers included; per type: KB sent)")
    print()
    print(f"biggest resources (first visits, {BIGGEST} of each page):")
    for v in visits:
        if v.visit != "first":
            continue
        print(f"  {v.page}:")
        for size, status, url in sorted(v.resources, reverse=True)[:BIGGEST]:
            print(f"    {kb(size):>7} KB  {status:<10} {url[:100]}")
    home = {v.visit: v for v in visits if v.page == "home"}
    print()
    for visit, goal in (("first", GOAL_FIRST), ("repeat", GOAL_REPEAT)):
        figure = home[visit].total
        verdict = "within" if figure <= goal else "OVER"
        print(
            f"goal: home {visit} visit <= {kb(goal)} KB: {kb(figure)} KB "
            f"({figure / goal:.0%} of the goal, {verdict})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--no-photos", action="store_true", help="the demo data as it is")
    parser.add_argument("--desktop", action="store_true", help="1366x900 instead of a phone")
    parser.add_argument("--scroll", action="store_true", help="scroll each page to its end")
    parser.add_argument("--requests", action="store_true", help="list every request's bytes")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="market-weight-") as tmp_name:
        tmp = Path(tmp_name)
        database_url = f"sqlite:///{tmp / 'bench.db'}"
        upload_dir = tmp / "uploads"
        app = build_app(database_url, upload_dir)
        seed(app)
        photos = 0 if args.no_photos else add_photos(app)
        _, home, category, product = pick_paths(app)
        paths = {"home": home, "category": category, "product": product}
        device = DESKTOP if args.desktop else PHONE
        with (
            gunicorn(database_url, upload_dir, args.workers, tmp / "gunicorn.log") as port,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                print(
                    f"market page weight: chromium {browser.version}, "
                    f"{'desktop 1366x900' if args.desktop else 'phone 390x844 @2x'}, "
                    f"gunicorn {args.workers} sync workers on loopback, SQLite demo data, "
                    f"{photos} synthetic product photos"
                    + (", pages scrolled to the end" if args.scroll else "")
                )
                print(f"pages: {paths}")
                print()
                visits = run(browser, f"http://127.0.0.1:{port}", paths, device, args.scroll)
            finally:
                browser.close()
    report(visits, args.requests)
    failures = [f"{v.page} {v.visit}: {f}" for v in visits for f in v.failed]
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
