"""A fake of Cloudinary's upload API for the e2e tests (standard library only).

It speaks the part of https://cloudinary.com/documentation/image_upload_api_reference that the
media service uses, for one cloud name and one api_key / api_secret pair:

- `POST /v1_1/<cloud>/<resource_type>/upload` (multipart/form-data or urlencoded; resource_type
  `image`, `video`, `raw` or `auto`): checks `api_key`, `timestamp` (not more than an hour
  away from now) and `signature` exactly as Cloudinary does (the SHA-1 hex of every parameter but
  `file`, `api_key`, `resource_type`, `cloud_name` and `signature`, and but empty ones, sorted
  by name and joined as `k=v` with `&`, followed by the API secret), keeps the file in memory and
  answers `{public_id, version, signature, width?, height?, format, resource_type, bytes, type:
  "upload", secure_url, url, ...}`. Refusals have Cloudinary's shape `{"error": {"message"}}`:
  401 for an unknown api_key, a wrong signature (`Invalid Signature <sig>. String to sign -
  '<string>'.`) or a stale timestamp; 400 for a missing parameter or an `image` that is not one.
- `POST /v1_1/<cloud>/<resource_type>/destroy` (signed the same way): `{"result": "ok"}` or
  `{"result": "not found"}`.
- `GET /<cloud>/<resource_type>/upload/<public_id>.<format>` (the `secure_url`, also with a
  `v<version>/` segment): the stored bytes with a content type. A `raw` file has no format apart
  from its id, as on Cloudinary: its URL is `.../raw/upload/<public_id>` and its type is what the
  id's extension names (`application/octet-stream` without one).

Programmable faults (`fail_next_uploads`, `delay`) and a record of every request (`requests`,
`uploads_seen`) let tests count retries. Use it as a context manager; it listens on a free
loopback port in a daemon thread:

    with FakeCloudinary() as cloud:
        env = {"CLOUDINARY_URL": cloud.cloudinary_url, "CLOUDINARY_UPLOAD_PREFIX": cloud.base_url}
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Parameters Cloudinary leaves out of the string to sign.
UNSIGNED = {"file", "api_key", "resource_type", "cloud_name", "signature"}
RESOURCE_TYPES = {"image", "video", "raw", "auto"}
# How far a request's `timestamp` may be from now.
TIMESTAMP_WINDOW = 3600

CONTENT_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm", "ogg": "audio/ogg", "mp3": "audio/mpeg",
    "wav": "audio/wav", "m4a": "audio/mp4", "pdf": "application/pdf", "zip": "application/zip", "txt": "text/plain",
}


def string_to_sign(params: dict[str, str]) -> str:
    """Cloudinary's string to sign (without the secret)."""
    signed = {k: v for k, v in params.items() if k not in UNSIGNED and v != ""}
    return "&".join(f"{k}={signed[k]}" for k in sorted(signed))


def sign(params: dict[str, str], secret: str) -> str:
    """Cloudinary's SHA-1 signature of `params` with `secret`."""
    return hashlib.sha1((string_to_sign(params) + secret).encode("utf-8")).hexdigest()


# --- what the bytes are ---------------------------------------------------------------------------


def _image_info(data: bytes) -> tuple[str, int | None, int | None] | None:
    """(format, width, height) of a PNG, JPEG, GIF or WebP; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith((b"GIF87a", b"GIF89a")) and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "gif", width, height
    if data.startswith(b"\xff\xd8\xff"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return "jpg", width, height
            i += 2 + length
        return "jpg", None, None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8X" and len(data) >= 30:
            return ("webp", (int.from_bytes(data[24:27], "little") + 1), int.from_bytes(data[27:30], "little") + 1)
        if chunk == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 " and len(data) >= 30:
            return ("webp", int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF)
        return "webp", None, None
    return None


def _video_format(data: bytes) -> str | None:
    """The format of video and audio files (Cloudinary's `video` resource type holds both)."""
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return "m4a" if brand.startswith(b"M4A") else "mov" if brand.startswith(b"qt") else "mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if data.startswith(b"OggS"):
        return "ogg"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"ID3") or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


# --- multipart/form-data ----------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def _header_params(value: str) -> Message:
    message = Message()
    message["Content-Type"] = value  # any header works for get_param()
    return message


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body, byte-exact. Raises ValueError when malformed."""
    boundary = _header_params(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise ValueError("no first boundary")
    parts: list[Part] = []
    position = start + len(delimiter)
    while True:
        if body[position:position + 2] == b"--":
            return parts
        if body[position:position + 2] != b"\r\n":
            raise ValueError("bad boundary line")
        position += 2
        header_end = body.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise ValueError("unterminated part headers")
        headers: dict[str, str] = {}
        for line in body[position:header_end].split(b"\r\n"):
            if b":" in line:
                key, _, value = line.decode("utf-8", "surrogateescape").partition(":")
                headers[key.strip().lower()] = value.strip()
        content_start = header_end + 4
        end = body.find(b"\r\n" + delimiter, content_start)
        if end < 0:
            raise ValueError("unterminated part")
        disposition = _header_params("form-data; " + headers.get("content-disposition", "").partition(";")[2])
        name = disposition.get_param("name")
        filename = disposition.get_param("filename")
        if not isinstance(name, str):
            raise ValueError("a part without a name")
        parts.append(Part(name=name, data=body[content_start:end],
                          filename=filename if isinstance(filename, str) else None,
                          content_type=headers.get("content-type")))
        position = end + 2 + len(delimiter)


# --- the server -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request the fake received, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request's body had been read
    params: dict[str, str] = field(default_factory=dict)  # form fields but the file
    file_name: str | None = None
    file_content_type: str | None = None
    file_size: int | None = None
    action: str | None = None  # "upload", "destroy", "serve" or None
    resource_type: str | None = None
    status: int | None = None
    # Set for signed calls: the string to sign (without the secret) and whether the signature matched.
    string_to_sign: str | None = None
    signature_valid: bool | None = None
    fault: str | None = None  # "fail" or "delay" when a programmed fault hit this request


@dataclass
class Stored:
    public_id: str
    resource_type: str
    format: str
    data: bytes
    content_type: str
    version: int
    width: int | None = None
    height: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timed-out upload) is expected; stay quiet.
        pass


class FakeCloudinary:
    """The fake server; `start()` / `stop()` or a `with` block."""

    def __init__(self, cloud_name: str = "e2e-cloud", api_key: str | None = None, api_secret: str | None = None) -> None:
        self.cloud_name = cloud_name
        self.api_key = api_key or str(secrets.randbelow(10**15 - 10**14) + 10**14)
        self.api_secret = api_secret or secrets.token_urlsafe(20).replace("-", "x").replace("_", "y")
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._stored: dict[tuple[str, str], Stored] = {}
        self._fail_uploads = 0
        self._fail_after = 0
        self._fail_status = 500
        self._delay = 0.0
        self._maximum_file_bytes: int | None = None
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> "FakeCloudinary":
        fake = self

        class Handler(_Handler):
            cloud = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-cloudinary", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # wakes delayed handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeCloudinary":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake Cloudinary is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """For `CLOUDINARY_UPLOAD_PREFIX`."""
        return f"http://127.0.0.1:{self.port}"

    def cloudinary_url(self, api_key: str | None = None, api_secret: str | None = None) -> str:
        """For `CLOUDINARY_URL` (another key or secret for tests of refusals)."""
        key = urllib.parse.quote(api_key or self.api_key, safe="")
        secret = urllib.parse.quote(api_secret or self.api_secret, safe="")
        return f"cloudinary://{key}:{secret}@{self.cloud_name}"

    # -- faults --

    def fail_next_uploads(self, count: int, status: int = 500, after: int = 0) -> None:
        """The next `count` upload requests answer `status` with an error body (before any check),
        once `after` more have been let through."""
        with self._lock:
            self._fail_uploads = count
            self._fail_after = after
            self._fail_status = status

    def delay(self, seconds: float) -> None:
        """Every API answer (upload, destroy) from now on comes `seconds` late (0: no delay)."""
        with self._lock:
            self._delay = seconds

    def limit_file_size(self, maximum: int | None) -> None:
        """Uploads larger than `maximum` bytes are refused as Cloudinary refuses a file over the
        account's plan limit (400, "File size too large. Got N. Maximum is M."); None: no limit."""
        with self._lock:
            self._maximum_file_bytes = maximum

    def reset(self) -> None:
        """No faults, no record (stored files stay); wakes requests that are being delayed."""
        with self._lock:
            self._fail_uploads = 0
            self._fail_after = 0
            self._delay = 0.0
            self._maximum_file_bytes = None
            self._requests.clear()
            self._release.set()
            self._release = threading.Event()

    # -- what happened --

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def uploads_seen(self) -> list[Recorded]:
        return [r for r in self.requests if r.action == "upload"]

    def stored(self, public_id: str, resource_type: str | None = None) -> Stored | None:
        with self._lock:
            for (kind, pid), item in self._stored.items():
                if pid == public_id and (resource_type is None or kind == resource_type):
                    return item
        return None

    def secure_url(self, item: Stored) -> str:
        suffix = f".{item.format}" if item.format else ""
        return f"{self.base_url}/{self.cloud_name}/{item.resource_type}/upload/{item.public_id}{suffix}"

    # -- used by the handler --

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self._requests.append(record)

    def _take_fault(self) -> tuple[int | None, float, threading.Event]:
        """(status to fail with or None, delay, the event that ends the delay early) for one API call."""
        with self._lock:
            status = None
            if self._fail_uploads > 0 and self._fail_after > 0:
                self._fail_after -= 1
            elif self._fail_uploads > 0:
                self._fail_uploads -= 1
                status = self._fail_status
            return status, self._delay, self._release


class _Handler(BaseHTTPRequestHandler):
    cloud: FakeCloudinary
    protocol_version = "HTTP/1.1"  # answers `Expect: 100-continue` at once (libcurl sends it for big bodies)
    server_version = "FakeCloudinary/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # -- plumbing --

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, record: Recorded | None = None) -> None:
        if record is not None:
            record.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _json(self, status: int, value: Any, record: Recorded) -> None:
        self._send(status, json.dumps(value).encode("utf-8"), "application/json; charset=utf-8", record)

    def _error(self, status: int, message: str, record: Recorded) -> None:
        self._json(status, {"error": {"message": message}}, record)

    # -- routes --

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        record = Recorded(method="POST", path=path, headers={k.lower(): v for k, v in self.headers.items()},
                          at=time.monotonic())
        self.cloud._record(record)
        segments = path.strip("/").split("/")
        if len(segments) != 4 or segments[0] != "v1_1" or segments[3] not in ("upload", "destroy"):
            self._error(404, f"Unknown route {path}", record)
            return
        _, cloud_name, resource_type, action = segments
        record.action, record.resource_type = action, resource_type

        # Parameters and file.
        params: dict[str, str] = {}
        file: Part | None = None
        content_type = self.headers.get("Content-Type", "")
        try:
            if content_type.lower().startswith("multipart/form-data"):
                for part in parse_multipart(body, content_type):
                    if part.name == "file":
                        file = part
                    else:
                        params[part.name] = part.data.decode("utf-8")
            else:
                for key, value in urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True):
                    params[key] = value
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(400, f"Malformed request body: {exc}", record)
            return
        record.params = dict(params)
        if file is not None:
            record.file_name, record.file_content_type, record.file_size = file.filename, file.content_type, len(file.data)

        # Programmed faults come first, as a struggling server would.
        fail_status, delay, release = self.cloud._take_fault() if action == "upload" else (None, *self._delay_only())
        if delay > 0:
            record.fault = "delay"
            release.wait(delay)
        if fail_status is not None:
            record.fault = "fail"
            self._error(fail_status, "General Error", record)
            return

        if cloud_name != self.cloud.cloud_name:
            self._error(401, f"Invalid cloud_name {cloud_name}", record)
            return
        if resource_type not in RESOURCE_TYPES or (action == "destroy" and resource_type == "auto"):
            self._error(400, f"Invalid resource type {resource_type}", record)
            return
        problem = self._check_authentication(params, record)
        if problem is not None:
            self._error(*problem, record)
            return
        if action == "destroy":
            self._destroy(params, resource_type, record)
        else:
            self._upload(params, file, resource_type, record)

    def _delay_only(self) -> tuple[float, threading.Event]:
        with self.cloud._lock:
            return self.cloud._delay, self.cloud._release

    def _check_authentication(self, params: dict[str, str], record: Recorded) -> tuple[int, str] | None:
        """Cloudinary's checks of a signed call, in its order; (status, message) of a refusal."""
        api_key = params.get("api_key", "")
        if not api_key:
            return 401, "Must supply api_key"
        if api_key != self.cloud.api_key:
            return 401, f"Unknown API key {api_key}"
        timestamp = params.get("timestamp", "")
        if not timestamp:
            return 400, "Missing required parameter - timestamp"
        try:
            reported = int(timestamp)
        except ValueError:
            return 400, f"Invalid timestamp {timestamp}"
        signature = params.get("signature", "")
        if not signature:
            return 400, "Missing required parameter - signature"
        record.string_to_sign = string_to_sign(params)
        expected = sign(params, self.cloud.api_secret)
        record.signature_valid = signature.lower() == expected
        if not record.signature_valid:
            return 401, f"Invalid Signature {signature}. String to sign - '{record.string_to_sign}'."
        if abs(time.time() - reported) > TIMESTAMP_WINDOW:
            when = time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(reported))
            return 401, f"Stale request - reported time is {when} which is out of range"
        return None

    def _upload(self, params: dict[str, str], file: Part | None, resource_type: str, record: Recorded) -> None:
        if file is None or not file.data:
            self._error(400, "Missing required parameter - file", record)
            return
        data = file.data
        with self.cloud._lock:
            maximum = self.cloud._maximum_file_bytes
        if maximum is not None and len(data) > maximum:
            self._error(400, f"File size too large. Got {len(data)}. Maximum is {maximum}.", record)
            return
        image = _image_info(data)
        video = _video_format(data)
        if resource_type == "auto":
            resource_type = "image" if image else "video" if video else "raw"
        width = height = None
        if resource_type == "image":
            if image is None:
                self._error(400, "Invalid image file", record)
                return
            fmt, width, height = image
        elif resource_type == "video":
            if video is None:
                self._error(400, "Unsupported video format or file", record)
                return
            fmt = video
        else:
            fmt = ""
        public_id = params.get("public_id")
        if not public_id:
            public_id = secrets.token_hex(10)
            if resource_type == "raw":
                # A generated raw id takes the upload's extension; a given one is kept as it is.
                name = file.filename or ""
                public_id += f".{name.rsplit('.', 1)[1].lower()}" if "." in name.strip(".") else ""
        if params.get("folder"):
            public_id = f"{params['folder'].strip('/')}/{public_id}"
        version = int(time.time())
        # A raw file has no format of its own: its URL is its id, served as the id's extension says.
        extension = fmt or (public_id.rsplit(".", 1)[1].lower() if "." in public_id.rsplit("/", 1)[-1] else "")
        content_type = CONTENT_TYPES.get(extension, "application/octet-stream")
        item = Stored(public_id=public_id, resource_type=resource_type, format=fmt, data=data,
                      content_type=content_type, version=version, width=width, height=height)
        with self.cloud._lock:
            self.cloud._stored[(resource_type, public_id)] = item
        secure_url = self.cloud.secure_url(item)
        reply: dict[str, Any] = {
            "asset_id": secrets.token_hex(16),
            "public_id": public_id,
            "version": version,
            "version_id": secrets.token_hex(16),
            "signature": hashlib.sha1(f"public_id={public_id}&version={version}{self.cloud.api_secret}".encode()).hexdigest(),
            "format": fmt,
            "resource_type": resource_type,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tags": [],
            "bytes": len(data),
            "type": "upload",
            "etag": hashlib.md5(data).hexdigest(),  # noqa: S324 - Cloudinary's etag is an MD5
            "placeholder": False,
            "url": secure_url,
            "secure_url": secure_url,
            "original_filename": (file.filename or "file").rsplit(".", 1)[0],
        }
        if width is not None and height is not None:
            reply["width"], reply["height"] = width, height
        if not fmt:
            del reply["format"]
        self._json(200, reply, record)

    def _destroy(self, params: dict[str, str], resource_type: str, record: Recorded) -> None:
        public_id = params.get("public_id", "")
        if not public_id:
            self._error(400, "Missing required parameter - public_id", record)
            return
        with self.cloud._lock:
            found = self.cloud._stored.pop((resource_type, public_id), None)
        self._json(200, {"result": "ok" if found else "not found"}, record)

    def _serve(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        record = Recorded(method=self.command, path=path, headers={k.lower(): v for k, v in self.headers.items()},
                          at=time.monotonic(), action="serve")
        self.cloud._record(record)
        segments = path.strip("/").split("/")
        if len(segments) >= 4 and segments[0] == self.cloud.cloud_name and segments[2] == "upload":
            record.resource_type = segments[1]
            rest = segments[3:]
            if len(rest) > 1 and rest[0].startswith("v") and rest[0][1:].isdigit():
                rest = rest[1:]
            wanted = "/".join(rest)
            with self.cloud._lock:
                candidates = [item for (kind, _), item in self.cloud._stored.items() if kind == segments[1]]
            for item in candidates:
                if wanted in (f"{item.public_id}.{item.format}" if item.format else item.public_id, item.public_id):
                    self._send(200, item.data, item.content_type, record)
                    return
        self._send(404, b"Resource not found", "text/plain", record)
