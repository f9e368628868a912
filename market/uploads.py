"""Images are accepted by what they contain, not by their names: Pillow must recognise a JPEG,
PNG or WebP within the size limit. They are re-encoded (dropping EXIF, e.g. GPS) under random
names: public pictures (products, villages) and their thumbnails under UPLOAD_DIR, served to
anyone at /media; money documents (bank slips, refund and payout proofs, invoices) and export
files under PRIVATE_UPLOAD_DIR, served only by views that first check who may see them
(`send_private`)."""

from __future__ import annotations

import io
import os
import posixpath
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from flask import Response, abort, current_app, send_file, url_for
from flask_babel import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError
from werkzeug.datastructures import FileStorage
from werkzeug.security import safe_join

from market.errors import DomainError

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_PIXELS = 40_000_000
FULL_SIZE = 1600
THUMB_SIZE = 480
# Square WebP thumbnails for the product cards (`srcset`): a card is 160-312 CSS px wide
# (market/assets.py CARD_SIZES), so 320 px serves one-pixel-per-pixel screens, 400 px phones
# with two device pixels per CSS pixel (a 390 px phone's card is 175 px), 480 px tablets and
# 640 px phones with three.
CARD_WIDTHS = (320, 400, 480, 640)
CARD_THUMBNAIL = re.compile(r"^(?P<stem>.+)\.w(?P<width>\d+)\.webp$")
# WebP copies of a product page's pictures, whole (not cropped), for its gallery's `srcset`: the
# gallery is the page's width on a phone (a 390 px phone at two or three device pixels per CSS
# pixel wants 800 or 1200 px) and half of it from the md breakpoint (GALLERY_SIZES); the stored
# picture (at most FULL_SIZE) stays the largest choice and the fallback `src`.
GALLERY_WIDTHS = (480, 800, 1200)
GALLERY_SIZES = "(min-width: 768px) 50vw, 100vw"
GALLERY_IMAGE = re.compile(r"^(?P<stem>.+)\.g(?P<width>\d+)\.webp$")
# Folders of money documents. The public /media route refuses them even under UPLOAD_DIR, where
# slips were stored before they became private (market/security/headers.py).
PRIVATE_FOLDERS = frozenset(
    {"transfers", "refunds", "payouts", "invoices", "exports", "inspections", "certificates"}
)
PRIVATE_CACHE_CONTROL = "private, no-store"


class ImageRejected(DomainError):
    pass


@dataclass(frozen=True)
class StoredImage:
    path: str
    thumb_path: str
    width: int
    height: int


def read_upload(upload: FileStorage) -> bytes:
    limit = current_app.config["MAX_IMAGE_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ImageRejected(_("图片不能超过 %(mb)d MB", mb=limit // (1024 * 1024)), field="images")
    if not data:
        raise ImageRejected(_("图片是空文件"), field="images")
    return data


def inspect_image(data: bytes) -> str:
    """Return the format Pillow finds in the bytes, or refuse them."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format
            width, height = probe.size
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageRejected(
            _("文件不是有效的图片（只接受 JPEG、PNG、WebP）"), field="images"
        ) from None
    if image_format not in ALLOWED_FORMATS:
        raise ImageRejected(_("只接受 JPEG、PNG、WebP 格式的图片"), field="images")
    if width * height > MAX_PIXELS:
        raise ImageRejected(_("图片像素太多"), field="images")
    return image_format


def _save(upload: FileStorage, folder: str, root: Path, *, thumbnail: bool) -> StoredImage:
    data = read_upload(upload)
    image_format = inspect_image(data)
    extension = ALLOWED_FORMATS[image_format]
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image_format == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.thumbnail((FULL_SIZE, FULL_SIZE))
        (root / folder).mkdir(parents=True, exist_ok=True)
        stem = uuid.uuid4().hex
        path = f"{folder}/{stem}.{extension}"
        image.save(root / path, format=image_format, quality=85)
        thumb_path = ""
        if thumbnail:
            thumb = image.copy()
            thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
            thumb_path = f"{folder}/{stem}.thumb.{extension}"
            thumb.save(root / thumb_path, format=image_format, quality=80)
            for width in CARD_WIDTHS:
                _save_card_thumbnail(image, root / card_thumbnail_path(path, width), width)
            for width in GALLERY_WIDTHS:
                if width < image.width:
                    _save_gallery_image(image, root / gallery_image_path(path, width), width)
        return StoredImage(path, thumb_path, image.width, image.height)


def card_thumbnail_path(path: str, width: int) -> str:
    """The card thumbnail of a stored picture, named after it: products/3/ab12.jpg ->
    products/3/ab12.w320.webp (no column holds it)."""
    return f"{posixpath.splitext(path)[0]}.w{width}.webp"


def card_srcset(path: str) -> str:
    return ", ".join(
        f"{url_for('web.media', filename=card_thumbnail_path(path, w))} {w}w" for w in CARD_WIDTHS
    )


def gallery_image_path(path: str, width: int) -> str:
    """products/3/ab12.jpg -> products/3/ab12.g800.webp (no column holds it)."""
    return f"{posixpath.splitext(path)[0]}.g{width}.webp"


def gallery_srcset(path: str, width: int) -> str:
    """The gallery's choices for a stored picture `width` px wide: each smaller WebP copy, and
    the picture itself."""
    choices = [
        f"{url_for('web.media', filename=gallery_image_path(path, w))} {w}w"
        for w in GALLERY_WIDTHS
        if w < width
    ]
    return ", ".join([*choices, f"{url_for('web.media', filename=path)} {width}w"])


def _save_card_thumbnail(image: Image.Image, target: Path, width: int) -> None:
    _save_webp(ImageOps.fit(image, (width, width), Image.Resampling.LANCZOS), target, 70)


def _save_gallery_image(image: Image.Image, target: Path, width: int) -> None:
    height = max(round(image.height * width / image.width), 1)
    _save_webp(image.resize((width, height), Image.Resampling.LANCZOS), target, 75)


def _save_webp(thumb: Image.Image, target: Path, quality: int) -> None:
    if thumb.mode not in ("RGB", "RGBA"):
        thumb = thumb.convert("RGBA" if "A" in thumb.getbands() else "RGB")
    # Written beside, then renamed: two requests making the same thumbnail never serve half.
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    thumb.save(partial, format="WEBP", quality=quality)
    os.replace(partial, target)


def ensure_derived_image(filename: str) -> None:
    """Pictures stored before their card thumbnails or gallery copies existed get them the
    first time one is asked for, from the picture it is named after (public pictures only; the
    caller refuses private folders)."""
    card, gallery = CARD_THUMBNAIL.match(filename), GALLERY_IMAGE.match(filename)
    if card is not None and int(card["width"]) in CARD_WIDTHS:
        match, save = card, _save_card_thumbnail
    elif gallery is not None and int(gallery["width"]) in GALLERY_WIDTHS:
        match, save = gallery, _save_gallery_image
    else:
        return
    root = current_app.config["UPLOAD_DIR"]
    target = safe_join(root, filename)
    if target is None or Path(target).is_file():
        return
    for extension in ALLOWED_FORMATS.values():
        original = safe_join(root, f"{match['stem']}.{extension}")
        if original is not None and Path(original).is_file():
            try:
                with Image.open(original) as opened:
                    opened.load()
                    save(opened, Path(target), int(match["width"]))
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                current_app.logger.warning("no derived image from %s", original, exc_info=True)
            return


def store_image(upload: FileStorage, folder: str) -> StoredImage:
    """A public picture and its thumbnail, under UPLOAD_DIR (anyone may fetch it at /media)."""
    if is_private_path(folder):
        raise ValueError(f"{folder!r} holds private documents: use store_private_image")
    return _save(upload, folder, Path(current_app.config["UPLOAD_DIR"]), thumbnail=True)


def store_private_image(upload: FileStorage, folder: str) -> str:
    """A money document (bank slip, proof of a refund or payout) under PRIVATE_UPLOAD_DIR;
    returns its path there, for `send_private`."""
    if folder not in PRIVATE_FOLDERS:
        raise ValueError(f"{folder!r} is not a private folder")
    root = Path(current_app.config["PRIVATE_UPLOAD_DIR"])
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _save(upload, folder, root, thumbnail=False).path


class DocumentRejected(DomainError):
    pass


DOCUMENT_EXTENSIONS = {"pdf": "pdf", "ofd": "ofd"}


def inspect_document(data: bytes) -> str:
    """What an e-invoice file holds, by its bytes: "pdf" (starts with %PDF- and ends with
    %%EOF), "ofd" (the Chinese e-invoice format: a ZIP with OFD.xml at its root), "image" (a
    picture Pillow accepts), or refused."""
    if data.startswith(b"%PDF-"):
        if b"%%EOF" not in data[-2048:]:
            raise DocumentRejected(_("PDF 文件不完整"), field="file")
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = {name.lstrip("/") for name in archive.namelist()[:10_000]}
        except (zipfile.BadZipFile, ValueError, OSError):
            names = set()
        if "OFD.xml" in names:
            return "ofd"
        raise DocumentRejected(_("文件不是有效的 OFD 发票"), field="file")
    try:
        inspect_image(data)
    except ImageRejected:
        raise DocumentRejected(
            _("文件不是有效的电子发票（只接受 PDF、OFD 或 JPEG/PNG/WebP 图片）"), field="file"
        ) from None
    return "image"


def store_private_document(upload: FileStorage, folder: str) -> str:
    """An e-invoice (PDF, OFD or picture) under PRIVATE_UPLOAD_DIR, accepted by what it
    contains (`inspect_document`) within MAX_INVOICE_BYTES; a picture is re-encoded like every
    image. Returns its path there, for `send_private`."""
    if folder not in PRIVATE_FOLDERS:
        raise ValueError(f"{folder!r} is not a private folder")
    limit = current_app.config["MAX_INVOICE_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise DocumentRejected(_("文件不能超过 %(mb)d MB", mb=limit // (1024 * 1024)), field="file")
    if not data:
        raise DocumentRejected(_("文件是空的"), field="file")
    kind = inspect_document(data)
    root = Path(current_app.config["PRIVATE_UPLOAD_DIR"])
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if kind == "image":
        image_upload = FileStorage(io.BytesIO(data), filename=upload.filename)
        try:
            return _save(image_upload, folder, root, thumbnail=False).path
        except ImageRejected as error:  # e.g. bigger than an image may be
            raise DocumentRejected(str(error), field="file") from None
    (root / folder).mkdir(parents=True, exist_ok=True)
    path = f"{folder}/{uuid.uuid4().hex}.{DOCUMENT_EXTENSIONS[kind]}"
    (root / path).write_bytes(data)
    return path


def is_private_path(path: str) -> bool:
    """Whether a path under an upload folder lies in a private folder, however it is spelt
    ("./transfers/x", "catalog/../transfers/x", "Transfers/x")."""
    normal = posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")
    return normal.split("/", 1)[0].lower() in PRIVATE_FOLDERS


def send_private(path: str | None) -> Response:
    """A private document to someone the caller has already allowed to see it, never kept by a
    browser or proxy cache. It is looked for under PRIVATE_UPLOAD_DIR, then under UPLOAD_DIR,
    where documents stored before they became private still lie (the public route refuses
    them there); anything else is a 404."""
    if not path or not is_private_path(path):
        abort(404)
    for key in ("PRIVATE_UPLOAD_DIR", "UPLOAD_DIR"):
        found = safe_join(current_app.config[key], path)
        if found is not None and Path(found).is_file():
            response = send_file(found, max_age=0, conditional=False)
            response.headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
            return response
    abort(404)


def remove_stored(*paths: str | None) -> None:
    """Stored public pictures, with the card thumbnails and gallery copies named after them."""
    root = Path(current_app.config["UPLOAD_DIR"])
    for path in paths:
        if path:
            (root / path).unlink(missing_ok=True)
            for width in CARD_WIDTHS:
                (root / card_thumbnail_path(path, width)).unlink(missing_ok=True)
            for width in GALLERY_WIDTHS:
                (root / gallery_image_path(path, width)).unlink(missing_ok=True)
