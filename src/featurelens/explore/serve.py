"""The live explorer: the static site's page on a local server, plus images users drop on it.

``featurelens explore MODEL_DIR --serve`` writes (or reuses) the site, then serves it with Flask on
waitress (the optional ``serve`` extra: ``pip install "featurelens[serve]"``), imported only here.
An upload is checked before the model sees it: at most :data:`MAX_BYTES`, decoded by Pillow as
one of :data:`FORMATS` (whatever its name or content type claims), at most :data:`MAX_PIXELS`
pixels, converted to the model's channels and centre-cropped and resized to its input; anything
else gets a JSON error the page shows. The server binds to localhost unless told otherwise.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from featurelens.errors import FeaturelensError, InputError
from featurelens.explore.records import Plan, compute_records
from featurelens.explore.sprites import colour_sheet, encode
from featurelens.model import Model
from featurelens.visualize.images import to_display

MAX_BYTES = 8 * 2**20
MAX_PIXELS = 40_000_000
MIN_SIDE = 8
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp", "WEBP": "image/webp"}
INSTALL = 'pip install "featurelens[serve]"'


class UploadRejected(InputError):
    """An uploaded file the live explorer does not take; the message says why, for the page."""


def flask_module() -> Any:
    try:
        import flask
        import waitress  # noqa: F401
    except ImportError as exc:
        raise FeaturelensError(f"the live explorer (--serve) needs Flask and waitress, which are not installed "
                               f"({exc.name} is missing): {INSTALL}") from exc
    return flask


def decode_upload(data: bytes, input_shape: tuple[int, int, int], max_bytes: int = MAX_BYTES,
                  max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The uploaded bytes as one image (1, H, W, C) uint8 the model takes, or :class:`UploadRejected`."""
    if not data:
        raise UploadRejected("the upload is empty; choose an image file")
    if len(data) > max_bytes:
        raise UploadRejected(f"the file is {len(data) / 2**20:.1f} MB, over the limit of {max_bytes / 2**20:.0f} MB")
    try:
        image: Image.Image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UploadRejected(f"this is not an image Pillow can read ({type(exc).__name__}); upload "
                             f"{', '.join(FORMATS)}") from exc
    if image.format not in FORMATS:  # what Pillow decoded, not what the name or content type said
        raise UploadRejected(f"{image.format} images are not accepted; upload {', '.join(FORMATS)}")
    width, height = image.size
    if width * height > max_pixels:
        raise UploadRejected(f"the image is {width}x{height} pixels, over the limit of {max_pixels:,} pixels")
    if min(width, height) < MIN_SIDE:
        raise UploadRejected(f"the image is {width}x{height} pixels; it needs at least {MIN_SIDE} on each side")
    try:
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadRejected(f"the {image.format} file is damaged or truncated ({exc})") from exc
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(backdrop, rgba)
    h, w, channels = input_shape
    image = image.convert("L" if channels == 1 else "RGB")
    fitted = ImageOps.fit(image, (w, h), Image.Resampling.BICUBIC)
    array = np.asarray(fitted, np.uint8)
    return array.reshape(1, h, w, channels)


def _data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def upload_answer(model: Model, plan: Plan, image: np.ndarray) -> dict[str, Any]:
    """The JSON the page takes for an uploaded image: its record (sheet inline) and its thumbnail."""
    record, sheet = compute_records(model, image, plan)[0]
    record["sheet"] = _data_uri(encode(sheet, "maps"), "image/webp")
    thumb = colour_sheet(to_display(image), 1)
    return {"record": record, "thumb": _data_uri(encode(thumb, "exact"), "image/png")}


def live_config(max_bytes: int) -> str:
    """``data/live.js`` as the server answers it: where to upload and the limits the page states."""
    config = {"upload": "api/upload", "max_bytes": max_bytes, "types": [f.lower() for f in FORMATS],
              "mime_types": sorted(set(FORMATS.values()))}
    return f"FL.live = {json.dumps(config)};\n"


def make_app(model: Model, site: str | os.PathLike[str], plan: Plan, max_bytes: int = MAX_BYTES) -> Any:
    """The Flask application serving the site folder ``site`` and computing uploads with ``model``."""
    flask = flask_module()
    folder = Path(site).resolve()
    if not (folder / "index.html").is_file():
        raise InputError(f"{folder} holds no explorer site (index.html); write one with featurelens explore")
    app = flask.Flask("featurelens.explore", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    lock = threading.Lock()  # one computation at a time: the model is not shared across threads

    def error(message: str, status: int) -> Any:
        response = flask.jsonify({"error": message})
        response.status_code = status
        return response

    @app.errorhandler(413)
    def too_large(_: Any) -> Any:
        return error(f"the file is over the limit of {max_bytes / 2**20:.0f} MB", 413)

    @app.get("/")
    def index() -> Any:
        return flask.send_from_directory(folder, "index.html")

    @app.get("/data/live.js")
    def live() -> Any:
        return flask.Response(live_config(max_bytes), mimetype="text/javascript")

    @app.get("/<path:path>")
    def files(path: str) -> Any:
        return flask.send_from_directory(folder, path)

    @app.post("/api/upload")
    def upload() -> Any:
        data = flask.request.get_data(cache=False)
        try:
            image = decode_upload(data, model.input_shape, max_bytes)
            with lock:
                answer = upload_answer(model, plan, image)
        except UploadRejected as exc:
            return error(str(exc), 415 if "accepted" in str(exc) or "not an image" in str(exc) else 400)
        return flask.jsonify(answer)

    return app


def serve(model: Model, site: str | os.PathLike[str], plan: Plan, host: str = "127.0.0.1", port: int = 8000,
          max_bytes: int = MAX_BYTES) -> None:
    """Serve the explorer at ``http://host:port/`` until interrupted (Ctrl-C)."""
    flask_module()
    from waitress import create_server

    server = create_server(make_app(model, site, plan, max_bytes), host=host, port=port, threads=4)
    print(f"The live explorer is at http://{host}:{server.effective_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.run()
    finally:
        server.close()
