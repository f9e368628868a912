"""Assets that fit a phone on 4G (market/assets.py, scripts/build_assets.py): fingerprinted files
kept a year, in brotli or gzip as the browser accepts, no htmx and no icon font but a sprite of the
icons the pages use, and product cards offering thumbnails of the card's size."""

from __future__ import annotations

import gzip
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import brotli
import pytest
from PIL import Image
from sqlalchemy import select

from market import create_app
from market.assets import AssetsMissing, Manifest
from market.catalog.models import Product, ProductImage
from market.extensions import db
from tests.factories import image_bytes

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
ASSET_URL = re.compile(r'(?:href|src)="(/static/[^"#]+)')
SVG_NS = "{http://www.w3.org/2000/svg}"
CONTENT_TYPES = {
    "css": "text/css",
    "js": "text/javascript",
    "svg": "image/svg+xml",
}


def _cache_directives(response) -> dict[str, str]:
    directives = {}
    for part in response.headers.get("Cache-Control", "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives[name.lower()] = value
    return directives


def _asset_urls(html: str) -> list[str]:
    return sorted(set(ASSET_URL.findall(html)))


def test_the_home_page_loads_only_fingerprinted_files_kept_for_a_year(app, client_as):
    for client in (client_as("buyer"), app.test_client()):
        home = client.get("/")
        assert home.status_code == 200
        # Pages keep their own headers: the security headers, and no caching of a personal page.
        assert "default-src 'self'" in home.headers["Content-Security-Policy"]
        assert home.headers["X-Frame-Options"] == "DENY"
        urls = _asset_urls(home.get_data(as_text=True))
        kinds = {url.rsplit(".", 1)[1] for url in urls}
        assert {"css", "js", "svg"} <= kinds
        for url in urls:
            assert re.search(r"^/static/dist/.+\.[0-9a-f]{12}\.\w+$", url), url
            response = client.get(url)
            assert response.status_code == 200, url
            assert _cache_directives(response) == {
                "public": "",
                "max-age": "31536000",
                "immutable": "",
            }, url
            kind = url.rsplit(".", 1)[1]
            assert response.headers["Content-Type"].split(";")[0] == CONTENT_TYPES[kind], url
            assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_text_files_come_in_brotli_or_gzip_as_the_browser_accepts(client):
    html = client.get("/").get_data(as_text=True)
    css = next(url for url in _asset_urls(html) if "bootstrap.min" in url and url.endswith(".css"))
    plain = client.get(css, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert b".btn" in plain.data
    assert plain.headers["Vary"] == "Accept-Encoding"

    as_brotli = client.get(css, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert as_brotli.headers["Content-Encoding"] == "br"
    assert brotli.decompress(as_brotli.data) == plain.data
    assert len(as_brotli.data) < len(plain.data) / 5

    as_gzip = client.get(css, headers={"Accept-Encoding": "gzip"})
    assert as_gzip.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(as_gzip.data) == plain.data


def test_unhashed_static_urls_still_work_with_a_short_cache(client):
    response = client.get("/static/css/market.css")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    directives = _cache_directives(response)
    assert "immutable" not in directives and int(directives["max-age"]) <= 3600


def test_no_htmx_and_no_icon_font(client):
    html = client.get("/").get_data(as_text=True)
    assert "htmx" not in html and "hx-" not in html
    assert "bootstrap-icons" not in html and 'class="bi bi-' not in html
    for url in _asset_urls(html):
        body = client.get(url, headers={"Accept-Encoding": "identity"}).data
        assert b"@font-face" not in body and b".woff" not in body, url
    assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 404
    assert "htmx" not in json.loads((REPO / "package.json").read_text())["dependencies"]
    for template in TEMPLATES.rglob("*.html"):
        source = template.read_text(encoding="utf-8")
        assert "hx-" not in source and "htmx" not in source, template
        assert not re.search(r'class="[^"]*\bbi-[a-z]', source), f"icon font class in {template}"


def _templates_icon_names() -> set[str]:
    names = set()
    for template in TEMPLATES.rglob("*.html"):
        names.update(re.findall(r"icon\(\s*'([a-z0-9-]+)'", template.read_text(encoding="utf-8")))
    return names


def test_the_sprite_holds_every_icon_the_templates_use(client_as):
    html = client_as("employee").get("/").get_data(as_text=True)
    uses = re.findall(r'<use href="(/static/dist/icons\.[0-9a-f]{12}\.svg)#i-([a-z0-9-]+)"', html)
    assert uses, "the home page shows icons from the sprite"
    sprite_url = {url for url, _ in uses}
    assert len(sprite_url) == 1
    sprite = client_as("employee").get(sprite_url.pop())
    assert sprite.headers["Content-Type"] == "image/svg+xml"
    root = ET.fromstring(sprite.data)
    symbols = {s.get("id") for s in root.iter(f"{SVG_NS}symbol")}
    for symbol in root.iter(f"{SVG_NS}symbol"):
        assert symbol.get("viewBox") == "0 0 16 16"
        assert list(symbol), f"{symbol.get('id')} has no shapes"
    used_by_templates = _templates_icon_names()
    assert len(used_by_templates) >= 20
    assert {f"i-{name}" for name in used_by_templates} <= symbols
    assert {f"i-{name}" for _, name in uses} <= symbols


def test_an_icon_is_hidden_from_screen_readers_unless_it_says_something(app):
    with app.test_request_context("/"):
        decorative = str(app.jinja_env.globals["icon"]("cart3"))
        labelled = str(app.jinja_env.globals["icon"]("check-lg", label="是", class_="text-success"))
        with pytest.raises(AssetsMissing):
            app.jinja_env.globals["icon"]("no-such-icon")
    assert 'aria-hidden="true"' in decorative and 'class="bi"' in decorative
    assert 'role="img" aria-label="是"' in labelled and "aria-hidden" not in labelled
    assert 'class="bi text-success"' in labelled


def test_a_missing_manifest_is_an_error_not_a_silent_fallback(tmp_path):
    with pytest.raises(AssetsMissing, match="make assets"):
        Manifest(tmp_path, reload=False).file("css/market.css")


def test_static_files_are_served_behind_a_proxy_too(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "proxy",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'proxy.db'}",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "TRUSTED_PROXIES": 1,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    client = app.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}
    health = client.get("/healthz", headers=forwarded)
    assert health.status_code == 200 and health.headers["X-Frame-Options"] == "DENY"
    with app.test_request_context("/"):
        url = app.jinja_env.globals["asset_url"]("js/market.js")
    response = client.get(url, headers=forwarded)
    assert response.status_code == 200
    assert "immutable" in _cache_directives(response)


# -- product pictures: thumbnails of the card's size -----------------------------------------------
def _listed_product_with_a_photo(app, client_as, world) -> int:
    manager = client_as("coop_manager")
    data = {
        "coop_id": world.coop,
        "name": "古丁高山红薯",
        "category_id": world.herbs,
        "description": "山地沙壤土种植",
        "origin_story": "海拔600米",
        "season_months": ["10", "11"],
        "shelf_life_days": "30",
        "spec": "5斤装",
        "price": "39.9",
        "stock": "100",
        "weight_g": "2500",
        "images": [(io.BytesIO(image_bytes("JPEG", (2000, 1000))), "a.jpg")],
    }
    response = manager.post("/coop/products/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.name == "古丁高山红薯"))
    response = manager.post(f"/coop/products/{product_id}/status", data={"status": "listed"})
    assert response.status_code == 302
    return product_id


def _card_sources(html: str) -> list[tuple[str, int]]:
    match = re.search(r'<source type="image/webp" srcset="([^"]+)" sizes="[^"]+">', html)
    assert match, "the product card offers WebP thumbnails"
    candidates = []
    for candidate in match.group(1).split(","):
        url, width = candidate.split()
        candidates.append((url, int(width.rstrip("w"))))
    return candidates


def test_an_uploaded_photo_gets_card_thumbnails_that_the_card_offers(app, client_as, world):
    _listed_product_with_a_photo(app, client_as, world)
    html = app.test_client().get("/products").get_data(as_text=True)
    sources = _card_sources(html)
    assert [width for _, width in sources] == [320, 400, 480, 640]
    for url, width in sources:
        response = client_as("buyer").get(url)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(response.data)) as thumb:
            assert thumb.format == "WEBP" and thumb.size == (width, width)
    # The fallback <img> reserves its square before the picture arrives, and waits to be seen.
    img = re.search(r'<img src="(/media/[^"]+)" class="card-img-top"[^>]*>', html)
    assert img and 'width="320" height="320"' in img.group(0) and 'loading="lazy"' in img.group(0)
    assert client_as("buyer").get(img.group(1)).headers["Content-Type"] == "image/jpeg"


def test_the_product_page_shows_the_full_picture_with_its_size(app, client_as, world):
    product_id = _listed_product_with_a_photo(app, client_as, world)
    html = client_as("buyer").get(f"/products/{product_id}").get_data(as_text=True)
    with app.app_context():
        image = db.session.scalar(select(ProductImage).where(ProductImage.product_id == product_id))
        path = image.path
    tag = re.search(rf'<img src="/media/{re.escape(path)}"[^>]*>', html)
    assert tag and 'width="1600" height="800"' in tag.group(0)


def _gallery_sources(html: str, path: str) -> list[tuple[str, int]]:
    tag = re.search(rf'<img src="/media/{re.escape(path)}" srcset="([^"]+)" sizes="[^"]+"', html)
    assert tag, "the gallery offers smaller copies of the picture"
    return [(url, int(width.rstrip("w"))) for url, width in (c.split() for c in tag[1].split(","))]


def test_the_gallery_offers_whole_smaller_copies_for_a_phone(app, client_as, world):
    """A phone's gallery needs 800 or 1200 px, not the 1600 px stored picture: the page offers
    WebP copies of each width, whole (same shape), and the picture itself as the largest; a
    picture stored before the copies existed gets each when it is first asked for."""
    product_id = _listed_product_with_a_photo(app, client_as, world)
    html = client_as("buyer").get(f"/products/{product_id}").get_data(as_text=True)
    with app.app_context():
        path = db.session.scalar(
            select(ProductImage.path).where(ProductImage.product_id == product_id)
        )
    sources = _gallery_sources(html, path)
    assert [width for _url, width in sources] == [480, 800, 1200, 1600]
    assert sources[-1][0] == f"/media/{path}"
    upload_dir = Path(app.config["UPLOAD_DIR"])
    for url, width in sources[:-1]:
        response = client_as("buyer").get(url)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(response.data)) as copy:
            assert copy.size == (width, width // 2)  # the 2:1 picture, not cropped
        assert len(response.data) < len(client_as("buyer").get(f"/media/{path}").data)
        stored = upload_dir / url.removeprefix("/media/")
        stored.unlink()  # as if uploaded before this release
        again = client_as("buyer").get(url)
        assert again.status_code == 200 and stored.is_file()


def test_photos_stored_before_thumbnails_existed_get_them_when_asked(app, client_as, world):
    _listed_product_with_a_photo(app, client_as, world)
    html = client_as("buyer").get("/products").get_data(as_text=True)
    upload_dir = Path(app.config["UPLOAD_DIR"])
    for url, width in _card_sources(html):
        stored = upload_dir / url.removeprefix("/media/")
        stored.unlink()  # as if the picture had been uploaded before this release
        response = client_as("buyer").get(url)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(response.data)) as thumb:
            assert thumb.size == (width, width)
        assert stored.is_file()
    # A thumbnail of a picture that does not exist stays a 404.
    assert client_as("buyer").get("/media/products/1/nothing.w320.webp").status_code == 404
    assert client_as("buyer").get("/media/products/1/nothing.w999.webp").status_code == 404


def test_removing_a_photo_removes_its_thumbnails(app, client_as, world):
    product_id = _listed_product_with_a_photo(app, client_as, world)
    with app.app_context():
        image = db.session.scalar(select(ProductImage).where(ProductImage.product_id == product_id))
        image_id, stem = image.id, image.path.rsplit(".", 1)[0]
    upload_dir = Path(app.config["UPLOAD_DIR"])
    thumbnails = [upload_dir / f"{stem}.w{width}.webp" for width in (320, 400, 480, 640)]
    thumbnails += [upload_dir / f"{stem}.g{width}.webp" for width in (480, 800, 1200)]
    assert all(path.is_file() for path in thumbnails)
    response = client_as("coop_manager").post(
        f"/coop/products/{product_id}/images/{image_id}/delete"
    )
    assert response.status_code in (302, 303)
    assert not any(path.exists() for path in thumbnails)


def test_public_pages_are_compressed_and_private_ones_are_not(app, client_as):
    anonymous = app.test_client()
    plain = anonymous.get("/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    for encoding, decompress in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        response = anonymous.get("/", headers={"Accept-Encoding": f"{encoding}, deflate"})
        assert response.headers["Content-Encoding"] == encoding
        assert int(response.headers["Content-Length"]) == len(response.data)
        html = decompress(response.data).decode()
        assert "推荐好物" in html and html.rstrip().endswith("</html>")
        assert len(response.data) < len(plain.data) / 2
        assert "Cookie" in response.headers["Vary"]
    # A signed-in page carries a CSRF token worth stealing: never compressed (BREACH).
    signed_in = client_as("buyer").get("/", headers={"Accept-Encoding": "br, gzip"})
    assert signed_in.status_code == 200 and "Content-Encoding" not in signed_in.headers
    assert "推荐好物" in signed_in.get_data(as_text=True)


def test_bootstrap_is_trimmed_to_what_the_pages_use(client_as):
    html = client_as("organizer").get("/").get_data(as_text=True)
    url = next(u for u in _asset_urls(html) if "bootstrap.min" in u and u.endswith(".css"))
    css = client_as("organizer").get(url, headers={"Accept-Encoding": "identity"}).data.decode()
    full = (REPO / "static" / "vendor" / "bootstrap" / "bootstrap.min.css").read_text()
    assert len(css) < len(full) / 2
    # What the templates write, and what Bootstrap's JavaScript or a template composes at run
    # time (the menu folding and unfolding, dropdowns, dismissable and status colours).
    for selector in (
        ".navbar-expand-lg",
        ".navbar-expand-xxl",
        ".collapsing",
        ".collapse:not(.show)",
        ".dropdown-menu-end",
        ".dropdown-menu[data-bs-popper]",
        ".fade:not(.show)",
        ".alert-danger",
        ".text-bg-warning",
        ".carousel-item-next",
        ".carousel-item-start",
        ".is-invalid",
        ".was-validated",
        ".card-img-top",
        ".row-cols-2>*",
    ):
        assert selector in css, selector
    # Components no page uses are gone.
    for selector in (".accordion", ".toast", ".popover"):
        assert selector in full and selector not in css, selector


def test_card_pictures_are_kept_across_visits_whoever_is_signed_in(app, client_as, world):
    _listed_product_with_a_photo(app, client_as, world)
    html = app.test_client().get("/products").get_data(as_text=True)
    sizes = re.search(r'<source type="image/webp" srcset="[^"]+" sizes="([^"]+)">', html)
    assert sizes and sizes.group(1).endswith("calc(50vw - 20px)")
    for client in (app.test_client(), client_as("buyer")):
        client.get("/")  # a page renews the session cookie
        for url, _width in _card_sources(html):
            response = client.get(url)
            assert response.status_code == 200
            # No `Vary: Cookie` and no cookie of its own: a renewed cookie does not make the
            # browser ask for every picture again.
            assert "Cookie" not in response.headers.get("Vary", "")
            assert "Set-Cookie" not in response.headers
            directives = _cache_directives(response)
            assert "public" in directives and int(directives["max-age"]) >= 86400
