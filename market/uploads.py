"""Images are accepted by what they contain, not by their names: Pillow must recognise a JPEG,
PNG or WebP within the size limit. They are re-encoded (dropping EXIF, e.g. GPS) and thumbnailed
under instance/uploads with random names."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError
from werkzeug.datastructures import FileStorage

from market.errors import DomainError

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_PIXELS = 40_000_000
FULL_SIZE = 1600
THUMB_SIZE = 480


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


def store_image(upload: FileStorage, folder: str) -> StoredImage:
    data = read_upload(upload)
    image_format = inspect_image(data)
    extension = ALLOWED_FORMATS[image_format]
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image_format == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.thumbnail((FULL_SIZE, FULL_SIZE))
        thumb = image.copy()
        thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
        root = Path(current_app.config["UPLOAD_DIR"])
        (root / folder).mkdir(parents=True, exist_ok=True)
        stem = uuid.uuid4().hex
        path = f"{folder}/{stem}.{extension}"
        thumb_path = f"{folder}/{stem}.thumb.{extension}"
        image.save(root / path, format=image_format, quality=85)
        thumb.save(root / thumb_path, format=image_format, quality=80)
        return StoredImage(path, thumb_path, image.width, image.height)


def remove_stored(*paths: str | None) -> None:
    root = Path(current_app.config["UPLOAD_DIR"])
    for path in paths:
        if path:
            (root / path).unlink(missing_ok=True)
