"""Attachments, end to end (protocol.md section 2 `POST /api/attachments` and `/media/...`,
section 3 `add_attachments` and `attachment_added`, section 4 `Attachment`).

What is covered:
- the local store (the default): uploads through REST, the type taken from the bytes (not from
  the name or the declared type), width/height of images, sanitised file names, the served file
  (byte-identical, without credentials, with the detected Content-Type and `nosniff`), the
  refusals (unknown bytes, empty file, over 25 MiB, no token, not multipart, no `file` field) and
  path traversal on `/media/...`;
- binding uploads to messages with `add_attachments` (by id, and as Socket.IO binary files): the
  ack, the `attachment_added` event to every member, the attachments in the message reads, and
  the refusals (someone else's upload or message, an upload bound to another message, a deleted
  message, unknown ids);
- the Cloudinary store, against `fake_cloudinary.FakeCloudinary`: the media service is stopped
  and started again from `MESSENGER_BIN_DIR/media` with `CLOUDINARY_URL` /
  `CLOUDINARY_UPLOAD_PREFIX` pointing at the fake, for the signed upload, the resource type, a
  wrong secret, a retried 5xx and timeouts on every attempt. The normal media service is always
  started again afterwards. These tests come last in this file: their module-scoped fixture keeps
  the Cloudinary-backed media service until the module ends.

Users: two module-scoped users (`alice`, `bob`) for every test; each test makes its own messages
(their DM is shared: asking again for the same pair returns the same thread).

Environment: GATEWAY_URL, MESSENGER_BIN_DIR, MEDIA_ADMIN_PORT (default 9103), E2E_ACK_TIMEOUT,
E2E_EVENT_TIMEOUT.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import pathlib
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import uuid
import zlib
from typing import Any

import pika
import pytest
import requests

from e2e_support import GATEWAY_URL, TIMEOUT, Api, assert_error, call_service, describe, not_ready, psql, stop_process
from fake_cloudinary import FakeCloudinary, string_to_sign
from test_delivery import Device, assert_event, named, open_socket, services, take_dead_letters  # noqa: F401 - open_socket is a fixture
from test_messaging import RABBITMQ_URI, assert_id, assert_message, assert_timestamp, messages_page, short
from test_outbox_crash import BIN_DIR, ROOT

MAX_UPLOAD = 25 * 1024 * 1024
MEDIA_ADMIN_PORT = os.environ.get("MEDIA_ADMIN_PORT", "9103")
MEDIA_READY_URL = f"http://127.0.0.1:{MEDIA_ADMIN_PORT}/readyz"
LOCAL_URL_PATH = "/media/"
ATTACHMENT_KEYS = {"id", "type", "url", "fileName", "contentType", "sizeBytes", "createdAt"}

# The Cloudinary-backed media service of these tests: one attempt times out after 1.5 s, three
# attempts with backoff (200 ms, then 400 ms, jittered) stay under 6 s.
CLOUDINARY_TIMEOUT_MS = 1500
CLOUDINARY_ATTEMPTS = 3
MEDIA_START_TIMEOUT = 60.0


# --- files ----------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of that size (a gradient, so that the bytes are not all alike)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((x * 31 + y * 17) % 256 for x in range(width * 3)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def gif(width: int, height: int) -> bytes:
    """A 1-colour GIF89a of that size."""
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
            + b",\x00\x00\x00\x00" + struct.pack("<HH", width, height) + b"\x00\x02\x02D\x01\x00;")


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG (SOI, APP0, SOF0): enough to be recognised and measured."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


# A minimal PDF (MediaSniffer knows one by its `%PDF-` start).
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def wav(samples: int = 800) -> bytes:
    """A mono 8 kHz 8-bit WAV of silence."""
    data = b"\x80" * samples
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt \
        + b"data" + struct.pack("<I", len(data)) + data


def binary_noise(size: int = 2048) -> bytes:
    """Bytes of no accepted type: they start with NUL (no magic number of any type starts so,
    and text has no NUL) and go on random."""
    return b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" + os.urandom(size)


# --- REST helpers ---------------------------------------------------------------------------------


def upload(api: Api, token: str | None, file_name: str, data: bytes, content_type: str | None = None,
           field: str = "file") -> requests.Response:
    """POST /api/attachments with one multipart file field (requests builds the form)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    part = (file_name, data, content_type) if content_type is not None else (file_name, data)
    return api.session.post(api.url("/api/attachments"), headers=headers, files={field: part}, timeout=TIMEOUT)


def uploaded(api: Api, token: str, file_name: str, data: bytes, content_type: str | None = None) -> dict[str, Any]:
    """A 201 upload's attachment (shape checked, unbound)."""
    resp = upload(api, token, file_name, data, content_type)
    assert resp.status_code == 201, f"expected 201: {describe(resp)}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("attachment"), dict), describe(resp)
    attachment = body["attachment"]
    assert_attachment(attachment, size=len(data), message_id=None)
    return attachment


def absolute(url: str) -> str:
    """An attachment url is absolute or relative to the gateway."""
    return urllib.parse.urljoin(GATEWAY_URL + "/", url)


def fetch(url: str) -> requests.Response:
    """GET of an attachment's url without any credentials (a new connection, no session)."""
    return requests.get(absolute(url), timeout=TIMEOUT)


def wait_until_gone(url: str, what: str, timeout: float = 15) -> None:
    """Waits until `url` answers 404. A download that runs while the file is being deleted may
    break off after its headers (the gateway found the file, then it was gone): that counts as
    not gone yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = fetch(url).status_code
        except requests.exceptions.ChunkedEncodingError:
            status = 200
        if status == 404:
            return
        assert status == 200 and time.monotonic() < deadline, f"{what} is still served ({status})"
        time.sleep(0.2)


def assert_served(attachment: dict[str, Any], data: bytes) -> requests.Response:
    """The attachment's url serves exactly `data`, without credentials, with its contentType and
    `nosniff`."""
    resp = fetch(attachment["url"])
    assert resp.status_code == 200, f"fetching the attachment: {describe(resp)}"
    assert resp.content == data, (f"served {len(resp.content)} bytes that differ from the {len(data)} uploaded "
                                  f"(first bytes {resp.content[:16]!r} vs {data[:16]!r})")
    served_type = resp.headers.get("Content-Type", "")
    assert served_type.split(";")[0].strip().lower() == attachment["contentType"].split(";")[0].strip().lower(), (
        f"served as {served_type!r}, the attachment says {attachment['contentType']!r}")
    return resp


def raw_get(path: str) -> tuple[int, bytes]:
    """A GET of exactly `path` (no client-side normalisation of `..` or escapes)."""
    parts = urllib.parse.urlsplit(GATEWAY_URL)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        resp = connection.getresponse()
        return resp.status, resp.read()
    finally:
        connection.close()


# --- shapes ---------------------------------------------------------------------------------------


def assert_attachment(
    attachment: Any,
    *,
    kind: str | None = None,
    content_type: str | None = None,
    size: int | None = None,
    message_id: Any = ...,
    width: Any = ...,
    height: Any = ...,
) -> None:
    """An `Attachment`; `message_id=None` means unbound (messageId absent or null); `content_type`
    compares the media type without parameters; `...` skips a check."""
    assert isinstance(attachment, dict), f"attachment is not an object: {attachment!r}"
    missing = ATTACHMENT_KEYS - set(attachment)
    assert not missing, f"attachment lacks {sorted(missing)}: {attachment!r}"
    assert_id(attachment["id"], "attachment.id")
    assert attachment["type"] in ("IMAGE", "VIDEO", "AUDIO", "FILE"), attachment
    assert isinstance(attachment["url"], str) and attachment["url"], attachment
    assert isinstance(attachment["fileName"], str) and attachment["fileName"], attachment
    assert isinstance(attachment["contentType"], str) and "/" in attachment["contentType"], attachment
    size_bytes = attachment["sizeBytes"]
    assert isinstance(size_bytes, int) and not isinstance(size_bytes, bool) and size_bytes > 0, attachment
    assert_timestamp(attachment["createdAt"], "attachment.createdAt")
    for key in ("width", "height"):
        value = attachment.get(key)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0), attachment
    if attachment.get("messageId") is not None:
        assert_id(attachment["messageId"], "attachment.messageId")
    if kind is not None:
        assert attachment["type"] == kind, f"type {attachment['type']!r}, expected {kind!r}: {attachment!r}"
    if content_type is not None:
        media_type = attachment["contentType"].split(";")[0].strip().lower()
        assert media_type == content_type, f"contentType {attachment['contentType']!r}, expected {content_type!r}"
    if size is not None:
        assert size_bytes == size, f"sizeBytes {size_bytes}, expected {size}"
    if message_id is not ...:
        assert attachment.get("messageId") == message_id, f"messageId {attachment.get('messageId')!r}, expected {message_id!r}"
    if width is not ...:
        assert attachment.get("width") == width, f"width {attachment.get('width')!r}, expected {width!r}"
    if height is not ...:
        assert attachment.get("height") == height, f"height {attachment.get('height')!r}, expected {height!r}"


def same_attachment(got: dict[str, Any], want: dict[str, Any], message_id: str) -> None:
    """`got` is the upload `want`, now bound to `message_id`."""
    assert_attachment(got, message_id=message_id)
    for key in ("id", "type", "url", "fileName", "contentType", "sizeBytes", "width", "height"):
        assert got.get(key) == want.get(key), f"{key}: {got.get(key)!r} != uploaded {want.get(key)!r}\n{got!r}"


def local_token(attachment: dict[str, Any]) -> tuple[str, str]:
    """(token, stored name) of a local-store url `/media/<32 hex>/<name>`."""
    path = urllib.parse.urlsplit(absolute(attachment["url"])).path
    assert path.startswith(LOCAL_URL_PATH), f"not a local-store url: {attachment['url']!r}"
    token, _, name = path[len(LOCAL_URL_PATH):].partition("/")
    assert len(token) == 32 and all(c in "0123456789abcdef" for c in token), f"the url's token is not 128 random bits in hex: {attachment['url']!r}"
    return token, name


# --- users and sockets ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alice(module_account):
    return module_account()


@pytest.fixture(scope="module")
def bob(module_account):
    return module_account()


@pytest.fixture
def pair(open_socket, alice, bob) -> tuple[Device, Device, dict[str, Any]]:
    """Alice's and Bob's sockets (recording everything) and their DM."""
    a = open_socket(alice, label="alice")
    b = open_socket(bob, label="bob")
    thread = a.dm(bob.id)
    return a, b, thread


def bind(device: Device, message_id: str, ids: list[str]) -> Any:
    """The ack of `add_attachments {messageId, attachmentIds}`."""
    return device.call("add_attachments", {"messageId": message_id, "attachmentIds": ids})


def attachments_of(api: Api, account: Any, thread_id: str, message_id: str) -> dict[str, Any]:
    """The message as `GET /api/threads/:id/messages` shows it to `account`."""
    page = messages_page(api, account, thread_id, limit=50)
    found = [m for m in page["items"] if m["id"] == message_id]
    assert found, f"message {message_id} missing from the newest 50 of thread {thread_id}"
    return found[0]


# ==================================================================================================
# Local store: REST upload and /media/
# ==================================================================================================


def test_a_png_upload_is_served_back_byte_identical_without_credentials(api, alice):
    data = png(7, 5)
    # The declared type is wrong on purpose: the type comes from the bytes.
    attachment = uploaded(api, alice.access, "pixel.png", data, "application/octet-stream")
    assert_attachment(attachment, kind="IMAGE", content_type="image/png", size=len(data), width=7, height=5,
                      message_id=None)
    assert attachment["fileName"] == "pixel.png", attachment
    token, name = local_token(attachment)
    assert name.endswith(".png"), attachment

    resp = assert_served(attachment, data)
    assert resp.headers.get("Content-Type", "").split(";")[0] == "image/png", resp.headers
    assert resp.headers.get("X-Content-Type-Options", "").lower() == "nosniff", resp.headers

    # Unguessable: the same file again gets another url.
    again = uploaded(api, alice.access, "pixel.png", data)
    assert again["id"] != attachment["id"] and local_token(again)[0] != token, (attachment, again)


@pytest.mark.parametrize(
    "file_name, data, kind, content_type, width, height",
    [
        ("notes.png", "plain text, not an image ✓\n".encode(), "FILE", "text/plain", None, None),
        ("animation.txt", gif(9, 4), "IMAGE", "image/gif", 9, 4),
        ("photo.bin", jpeg_header(640, 480), "IMAGE", "image/jpeg", 640, 480),
        ("sound.mp4", wav(), "AUDIO", "audio/wav", None, None),
        ("report", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "FILE", "application/pdf", None, None),
    ],
    ids=["text-named-png", "gif-named-txt", "jpeg", "wav-named-mp4", "pdf-without-extension"],
)
def test_type_and_content_type_come_from_the_bytes(api, alice, file_name, data, kind, content_type, width, height):
    attachment = uploaded(api, alice.access, file_name, data, "image/png")
    assert_attachment(attachment, kind=kind, content_type=content_type, size=len(data), width=width, height=height)
    resp = assert_served(attachment, data)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == content_type, resp.headers
    assert resp.headers.get("X-Content-Type-Options", "").lower() == "nosniff", resp.headers


def test_file_names_are_sanitised(api, alice):
    attachment = uploaded(api, alice.access, "../../etc/pass wd?<x>.png", png(2, 2))
    name = attachment["fileName"]
    assert "/" not in name and "\\" not in name and ".." not in name and not name.startswith("."), attachment
    assert name.startswith("pass wd") and name.endswith(".png"), f"the last path component, cleaned: {name!r}"
    assert "?" not in name and "<" not in name and ">" not in name, attachment
    _, stored = local_token(attachment)
    assert ".." not in stored and "/" not in stored, attachment
    assert_served(attachment, png(2, 2))

    windows = uploaded(api, alice.access, "C:\\Users\\x\\report.txt", b"hello")
    assert windows["fileName"] == "report.txt", windows


@pytest.mark.parametrize("file_name", ["café.png", "日本語.png"], ids=["latin-accent", "cjk"])
def test_a_non_ascii_file_name_keeps_its_url_fetchable(api, alice, file_name):
    """Letters outside ASCII survive sanitising; the url must still work with a stock HTTP
    client, which sends them percent-encoded (UTF-8)."""
    data = png(2, 1)
    attachment = uploaded(api, alice.access, file_name, data)
    assert attachment["fileName"] == file_name, attachment
    resp = assert_served(attachment, data)
    assert resp.headers.get("X-Content-Type-Options", "").lower() == "nosniff", resp.headers


def test_bytes_of_no_accepted_type_are_refused(api, alice):
    message = assert_error(upload(api, alice.access, "data.png", binary_noise(), "image/png"), 422, "invalid_argument")
    assert "file" in message.lower(), message


def test_an_empty_file_is_refused(api, alice):
    assert_error(upload(api, alice.access, "empty.txt", b""), 422, "invalid_argument")


def test_the_upload_limit_is_25_mib(api, alice):
    assert_error(upload(api, alice.access, "big.txt", b"a" * (MAX_UPLOAD + 1)), 413, "payload_too_large")
    # Exactly the limit is accepted.
    attachment = uploaded(api, alice.access, "limit.txt", b"b" * MAX_UPLOAD)
    assert_attachment(attachment, kind="FILE", content_type="text/plain", size=MAX_UPLOAD)


def test_an_upload_needs_a_valid_token(api, alice):
    assert_error(upload(api, None, "a.png", png(1, 1)), 401, "unauthorized")
    assert_error(upload(api, "not-a-token", "a.png", png(1, 1)), 401, "unauthorized")
    tampered = alice.access[:-4] + ("AAAA" if not alice.access.endswith("AAAA") else "BBBB")
    assert_error(upload(api, tampered, "a.png", png(1, 1)), 401, "unauthorized")


def test_an_upload_must_be_multipart_with_a_file_field(api, alice):
    auth = {"Authorization": f"Bearer {alice.access}"}
    url = api.url("/api/attachments")
    # Not multipart at all.
    resp = api.session.post(url, headers={**auth, "Content-Type": "image/png"}, data=png(1, 1), timeout=TIMEOUT)
    assert_error(resp, 400, "invalid_argument")
    resp = api.session.post(url, headers=auth, json={"file": "aGVsbG8="}, timeout=TIMEOUT)
    assert_error(resp, 400, "invalid_argument")
    # Multipart without a `file` field.
    assert_error(upload(api, alice.access, "a.png", png(1, 1), field="attachment"), 400, "invalid_argument")
    # Multipart by its header, but a body that is not.
    resp = api.session.post(url, headers={**auth, "Content-Type": "multipart/form-data; boundary=xyz"},
                            data=b"this is not a multipart body", timeout=TIMEOUT)
    assert_error(resp, 400, "invalid_argument")


def test_a_file_field_without_a_file_name_is_the_file(api, alice):
    # curl's `-F 'file=<photo.png'` and Dart's `MultipartFile.fromBytes('file', bytes)` send the
    # bytes with no `filename`: the contract asks for the field `file`, not for a name. Until the
    # fifty-eighth session this was 400 "the form has no file field".
    data = png(3, 2)
    resp = api.session.post(api.url("/api/attachments"), headers={"Authorization": f"Bearer {alice.access}"},
                            files={"file": (None, data)}, timeout=TIMEOUT)
    assert resp.status_code == 201, describe(resp)
    attachment = resp.json()["attachment"]
    assert_attachment(attachment, kind="IMAGE", content_type="image/png", size=len(data), width=3, height=2,
                      message_id=None)
    assert attachment["fileName"] == "file", attachment
    assert local_token(attachment)[1].endswith(".png"), attachment
    assert_served(attachment, data)
    # Text sent so is a text file, as any other upload of text.
    resp = api.session.post(api.url("/api/attachments"), headers={"Authorization": f"Bearer {alice.access}"},
                            files={"file": (None, "just text")}, timeout=TIMEOUT)
    assert resp.status_code == 201, describe(resp)
    assert resp.json()["attachment"]["contentType"].startswith("text/plain"), describe(resp)


def test_a_large_form_of_tiny_parts_is_refused_at_once_and_the_gateway_goes_on(api, alice):
    """20 MB of 60-byte parts. Until the thirty-ninth session the gateway searched the whole
    body again (a copy of it, on Linux) for every part, on an event loop: an outside tester's
    form like this held a loop for 15 minutes, and the sockets and admin port on it with it.
    Now a form has at most 64 parts and is parsed in one pass."""
    part = b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n'
    body = part * (20_000_000 // len(part)) + b"--xyz--\r\n"
    resp = api.session.post(api.url("/api/attachments"), data=body, timeout=60, headers={
        "Authorization": f"Bearer {alice.access}", "Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(resp, 400, "invalid_argument")
    # A well-formed upload right after it is served as usual.
    assert upload(api, alice.access, "after.png", png(2, 2)).status_code == 201


def test_a_file_is_served_in_ranges_with_a_validator_and_kept_out_of_shared_caches(api, alice):
    """One byte range is 206 (video players on iOS need it), one outside the file 416, several
    the whole file; the token is the ETag (304 on a match); browsers may keep a file, shared
    caches may not (a deleted message's file must stop being served); a file opened on its own
    runs nothing in the gateway's origin."""
    data = png(7, 5)
    attachment = uploaded(api, alice.access, "ranges.png", data)
    url = absolute(attachment["url"])
    whole = requests.get(url, timeout=TIMEOUT)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert "sandbox" in whole.headers["Content-Security-Policy"]
    etag = whole.headers["ETag"]
    assert etag == f'"{local_token(attachment)[0]}"'

    part = requests.get(url, headers={"Range": "bytes=1-4"}, timeout=TIMEOUT)
    assert part.status_code == 206 and part.content == data[1:5]
    assert part.headers["Content-Range"] == f"bytes 1-4/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-3"}, timeout=TIMEOUT)
    assert tail.status_code == 206 and tail.content == data[-3:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=TIMEOUT)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    several = requests.get(url, headers={"Range": "bytes=0-1,3-4"}, timeout=TIMEOUT)
    assert several.status_code == 200 and several.content == data
    stale = requests.get(url, headers={"Range": "bytes=0-1", "If-Range": '"another"'}, timeout=TIMEOUT)
    assert stale.status_code == 200 and stale.content == data

    cached = requests.get(url, headers={"If-None-Match": etag}, timeout=TIMEOUT)
    assert cached.status_code == 304 and cached.content == b""
    assert requests.get(url, headers={"If-None-Match": '"another"'}, timeout=TIMEOUT).status_code == 200

    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    document = requests.get(absolute(uploaded(api, alice.access, "report.pdf", pdf)["url"]), timeout=TIMEOUT)
    assert document.status_code == 200 and document.headers["Content-Disposition"] == "attachment"


def test_path_traversal_on_media_is_not_found(api, alice):
    attachment = uploaded(api, alice.access, "probe.png", png(1, 1))
    token, name = local_token(attachment)
    status, _ = raw_get(f"/media/{token}/{name}")
    assert status == 200, "the probe's own url must work"
    # MEDIA_DIR is .run/media by default, so ../local.env is a real file next to it.
    attempts = [
        "/media/../local.env",
        "/media/%2e%2e/local.env",
        "/media/..%2flocal.env/x",
        f"/media/{token}/../../local.env",
        f"/media/{token}/..%2F..%2Flocal.env",
        f"/media/{token}/%2e%2e%2f%2e%2e%2flocal.env",
        f"/media/{token}/..%5C..%5Clocal.env",
        f"/media/{token}%2F..%2F..%2Flocal.env/x",
        f"/media/{token}/..",
        f"/media/{token}/%2e%2e",
        f"/media/{token}/.",
        f"/media/{token}/.{name}.partial",
        f"/media/{token}/{name}%00.txt",
        f"/media/{token}/{name}/..",
        f"/media/{token}/%2Fetc%2Fpasswd",
        "/media//etc/passwd",
        "/media/00000000000000000000000000000000/..%2F..%2F..%2Fetc%2Fpasswd",
    ]
    for path in attempts:
        status, body = raw_get(path)
        assert status == 404, f"GET {path} -> {status} {body[:120]!r}"
        assert b"DATABASE_URL" not in body and b"root:" not in body, f"GET {path} leaked a file: {body[:200]!r}"


# ==================================================================================================
# Binding uploads to messages
# ==================================================================================================


def test_add_attachments_binds_an_upload_and_tells_every_member(api, alice, bob, pair):
    a, b, thread = pair
    message = a.send(thread["id"], "look at this")
    data = png(4, 3)
    upload_ = uploaded(api, alice.access, "look.png", data)
    since_a, since_b = a.mark(), b.mark()

    reply = ok_data(bind(a, message["id"], [upload_["id"]]), "add_attachments")
    assert isinstance(reply.get("attachments"), list) and len(reply["attachments"]) == 1, short(reply)
    same_attachment(reply["attachments"][0], upload_, message["id"])

    for device, since in ((b, since_b), (a, since_a)):
        ev = device.wait_for(named("attachment_added", thread["id"], message["id"]), "attachment_added", since=since)
        assert_event(ev)
        assert ev.type == "ATTACHMENT_ADDED", ev.body
        assert ev.data.get("threadId") == thread["id"] and ev.data.get("messageId") == message["id"], ev.data
        assert isinstance(ev.data.get("attachments"), list) and len(ev.data["attachments"]) == 1, ev.data
        same_attachment(ev.data["attachments"][0], upload_, message["id"])

    for reader in (alice, bob):
        read = attachments_of(api, reader, thread["id"], message["id"])
        assert_message(read, deleted=False, body="look at this")
        assert len(read["attachments"]) == 1, read
        same_attachment(read["attachments"][0], upload_, message["id"])
    assert_served(upload_, data)

    # Binding the same upload to the same message again changes nothing.
    again = ok_data(bind(a, message["id"], [upload_["id"]]), "add_attachments again")
    assert [x["id"] for x in again["attachments"]] == [upload_["id"]], short(again)
    assert len(attachments_of(api, bob, thread["id"], message["id"])["attachments"]) == 1


def test_binding_someone_elses_upload_is_forbidden(api, alice, bob, pair):
    a, _, thread = pair
    message = a.send(thread["id"], "with bob's picture?")
    theirs = uploaded(api, bob.access, "bob.png", png(2, 2))
    err_ack(bind(a, message["id"], [theirs["id"]]), "forbidden", "binding another user's upload")
    # Also when mixed with one of the caller's own uploads: nothing is bound.
    mine = uploaded(api, alice.access, "alice.png", png(2, 2))
    err_ack(bind(a, message["id"], [mine["id"], theirs["id"]]), "forbidden", "binding own and another user's upload")
    assert attachments_of(api, alice, thread["id"], message["id"])["attachments"] == []


def test_binding_to_someone_elses_message_is_forbidden(api, alice, bob, pair):
    a, b, thread = pair
    their_message = b.send(thread["id"], "bob's words")
    mine = uploaded(api, alice.access, "alice.png", png(3, 3))
    err_ack(bind(a, their_message["id"], [mine["id"]]), "forbidden", "binding to another user's message")
    assert attachments_of(api, bob, thread["id"], their_message["id"])["attachments"] == []
    # The upload stayed unbound: its owner can still attach it to a message of their own.
    own = a.send(thread["id"], "alice's words")
    reply = ok_data(bind(a, own["id"], [mine["id"]]), "add_attachments after a refusal")
    same_attachment(reply["attachments"][0], mine, own["id"])


def test_an_upload_bound_to_another_message_is_a_conflict(api, alice, pair):
    a, _, thread = pair
    first = a.send(thread["id"], "first")
    second = a.send(thread["id"], "second")
    upload_ = uploaded(api, alice.access, "once.png", png(2, 3))
    ok_data(bind(a, first["id"], [upload_["id"]]), "add_attachments to the first message")
    err_ack(bind(a, second["id"], [upload_["id"]]), "conflict", "binding to a second message")
    assert attachments_of(api, alice, thread["id"], second["id"])["attachments"] == []
    kept = attachments_of(api, alice, thread["id"], first["id"])["attachments"]
    assert [x["id"] for x in kept] == [upload_["id"]], kept


def test_a_refused_bind_gives_back_only_the_uploads_it_bound(api, alice, open_socket, pair):
    """Three binds at once: R1 {M, [U]}, R2 {M, [U, V]}, R3 {M2, [V]}. R2 loses V to R3 and is a
    conflict; it must not give back U, which R1 bound and messaging recorded (it did in about
    half the tries: media then took U for unbound, and the clean-up would have deleted its file
    under a message that still shows it). Reservations are all or none now."""
    a, _, thread = pair
    second, third = open_socket(alice, label="alice-2"), open_socket(alice, label="alice-3")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for _ in range(12):
            u, v = uploaded(api, alice.access, "u.png", png(2, 2)), uploaded(api, alice.access, "v.png", png(2, 2))
            m, m2 = a.send(thread["id"], "R1 and R2"), a.send(thread["id"], "R3")
            calls = [pool.submit(bind, a, m["id"], [u["id"]]), pool.submit(bind, second, m["id"], [u["id"], v["id"]]),
                     pool.submit(bind, third, m2["id"], [v["id"]])]
            r1, r2, r3 = (call.result() for call in calls)
            if r1.get("ok"):
                assert psql(f"SELECT message_id FROM media.attachments WHERE id = '{u['id']}'") == m["id"], (r1, r2, r3)
            if r3.get("ok"):
                assert psql(f"SELECT message_id FROM media.attachments WHERE id = '{v['id']}'") == m2["id"], (r1, r2, r3)
            assert not (r2.get("ok") and r3.get("ok")), "V bound to two messages"


def test_a_message_has_at_most_50_attachments(api, alice, pair):
    """Over all its add_attachments: a message, its page and its deletion stay bounded. The
    refused bind gives its uploads back, and they can go to another message."""
    a, _, thread = pair
    message = a.send(thread["id"], "an album")
    uploads = [uploaded(api, alice.access, f"p{n}.png", png(2, 2)) for n in range(51)]
    for start in range(0, 50, 20):
        ok_data(bind(a, message["id"], [x["id"] for x in uploads[start:min(start + 20, 50)]]), "add_attachments")
    err_ack(bind(a, message["id"], [uploads[50]["id"]]), "invalid_argument", "the 51st attachment")
    assert len(attachments_of(api, alice, thread["id"], message["id"])["attachments"]) == 50
    other = a.send(thread["id"], "the one left over")
    ok_data(bind(a, other["id"], [uploads[50]["id"]]), "add_attachments to another message")


def test_two_binds_at_once_keep_a_message_to_50_attachments(api, alice, open_socket, pair):
    """A message with 11 attachments; two sockets bind 20 more each at the same moment. One
    goes through and the other is invalid_argument: 31 in all. Until the fortieth session binds
    took a share lock on the message, each counted only its own rows and those committed, and
    a reviewer's message ended with 51."""
    a, _, thread = pair
    sockets = [open_socket(alice, label=f"alice {n}") for n in range(2)]
    for round_ in range(3):  # 3 of 5 single rounds failed against the old service
        message = a.send(thread["id"], f"two albums at once {round_}")
        uploads = [uploaded(api, alice.access, f"q{n}.png", png(2, 2))["id"] for n in range(51)]
        ok_data(bind(a, message["id"], uploads[:11]), "add_attachments")
        replies: list[Any] = [None, None]
        start = threading.Barrier(2)

        def go(n: int, message_id: str = message["id"], uploads: list[str] = uploads) -> None:
            start.wait()
            replies[n] = bind(sockets[n], message_id, uploads[11 + 20 * n:31 + 20 * n])

        binding = [threading.Thread(target=go, args=(n,)) for n in range(2)]
        for thread_ in binding:
            thread_.start()
        for thread_ in binding:
            thread_.join(timeout=60)
        outcomes = sorted("ok" if reply.get("ok") else reply["error"]["code"] for reply in replies)
        assert outcomes == ["invalid_argument", "ok"], replies
        assert len(attachments_of(api, alice, thread["id"], message["id"])["attachments"]) == 31


def test_a_user_has_two_uploads_under_way_at_most(api, alice, bob):
    """Three uploads of 20 MB by one user at the same moment: two are stored, the third is 429
    `rate_limited` with Retry-After, refused before its body is read; another user's upload
    meanwhile is not held back. Until the fortieth session nothing bounded uploads under way,
    and each held about 88 MiB in the gateway (a reviewer's measure)."""
    data = b"words " * 3_400_000  # 20 MB of UTF-8 text
    start = threading.Barrier(4)
    responses: list[Any] = [None] * 4

    def send(n: int, token: str) -> None:
        start.wait()
        responses[n] = upload(Api(api.base_url), token, f"big{n}.txt", data, "text/plain")

    senders = [threading.Thread(target=send, args=(n, alice.access)) for n in range(3)]
    senders.append(threading.Thread(target=send, args=(3, bob.access)))
    for thread_ in senders:
        thread_.start()
    for thread_ in senders:
        thread_.join(timeout=120)
    statuses = sorted(resp.status_code for resp in responses[:3])
    assert statuses == [201, 201, 429], [(resp.status_code, resp.text[:200]) for resp in responses[:3]]
    refused = next(resp for resp in responses[:3] if resp.status_code == 429)
    assert_error(refused, 429, "rate_limited")
    assert refused.headers.get("Retry-After") == "1", refused.headers
    assert responses[3].status_code == 201, responses[3].text[:200]


def test_an_upload_body_that_trickles_is_cut_at_its_deadline_and_gives_its_slot_back(alice):
    """A gateway whose uploads' bodies must arrive within 2 s (`UPLOAD_BODY_TIMEOUT_SECONDS`;
    300 by default). Two uploads of one user that send their headers and a few bytes, then
    nothing, hold the user's two slots until then: each is answered 503 `unavailable`, and the
    user's next upload goes through. Until the forty-third session only the 60 s idle timeout
    bounded such a body, and a client sending a byte a minute held its slots for good."""
    from test_socketio import gateway_process  # the helper that starts another gateway
    with gateway_process(5077, 9177, UPLOAD_BODY_TIMEOUT_SECONDS="2") as (base, _):
        started = time.monotonic()
        trickling = [stalled_upload(5077, alice.access) for _ in range(2)]
        statuses = []
        for sock in trickling:
            try:
                statuses.append(status_line(sock, 15))
            finally:
                sock.close()
        elapsed = time.monotonic() - started
        assert all(" 503 " in status for status in statuses), statuses
        assert elapsed < 30, f"answered after {elapsed:.1f} s with a 2 s body deadline (the idle timeout is 60 s)"
        attachment = uploaded(Api(base), alice.access, "after.png", png(2, 2))
        assert attachment["type"] == "IMAGE", attachment


def stalled_upload(port: int, token: str) -> socket.socket:
    """An upload that sends its headers and the form's first line, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall((f"POST /api/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                  "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n").encode())
    return sock


def status_line(sock: socket.socket, timeout: float) -> str:
    """The first line the server answered on `sock` within `timeout`, or ""."""
    sock.settimeout(timeout)
    received = b""
    try:
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except (socket.timeout, ConnectionError):
        pass
    return received.split(b"\r\n", 1)[0].decode(errors="replace")


def test_uploads_stalled_by_accounts_holding_every_slot_give_one_up_for_another_user(account):
    """Eight accounts each hold their two upload slots with bodies that never come: the
    gateway's sixteen. Another user's upload takes the slot of one of them (a user holding more
    than the newcomer would), which is answered 503 and closed, and goes through. Until the
    fifty-third session the newcomer was refused 503 for as long as the bodies' deadline (five
    minutes), and the accounts could start again."""
    hogs = [account() for _ in range(8)]
    newcomer = account()
    sockets = [stalled_upload(5000, hog.access) for hog in hogs for _ in range(2)]
    try:
        # Every stalled upload has its slot once each hog's third upload is refused (the user's
        # two slots are checked first, so the probe takes nobody's).
        deadline = time.monotonic() + 15
        for hog in hogs:
            while upload(Api(GATEWAY_URL), hog.access, "probe.png", png(2, 2)).status_code != 429:
                assert time.monotonic() < deadline, "the stalled uploads did not all hold their slots within 15 s"
                time.sleep(0.1)
        attachment = uploaded(Api(GATEWAY_URL), newcomer.access, "through.png", png(2, 2))
        assert attachment["type"] == "IMAGE", attachment
        statuses = [status_line(sock, 0.5) for sock in sockets]
        given_up = [status for status in statuses if status]
        assert len(given_up) == 1 and " 503 " in given_up[0], statuses
    finally:
        for sock in sockets:
            sock.close()


def test_a_deleted_messages_attachments_are_empty(api, alice, bob, pair):
    a, _, thread = pair
    message = a.send(thread["id"], "soon gone")
    upload_ = uploaded(api, alice.access, "gone.png", png(2, 2))
    ok_data(bind(a, message["id"], [upload_["id"]]), "add_attachments")
    a.ok("delete_message", {"messageIds": [message["id"]]})
    for reader in (alice, bob):
        read = attachments_of(api, reader, thread["id"], message["id"])
        assert_message(read, deleted=True)
        assert read["attachments"] == [], read
    # A deleted message takes no new attachments.
    other = uploaded(api, alice.access, "late.png", png(2, 2))
    err_ack(bind(a, message["id"], [other["id"]]), ("invalid_argument", "not_found"), "binding to a deleted message")


def test_a_deleted_messages_files_are_deleted_and_other_messages_keep_theirs(api, alice, pair):
    """Soft delete keeps the message's row, not its files: their URLs stop working."""
    a, b, thread = pair
    gone_data, kept_data = png(6, 3), png(3, 6)
    gone_message, kept_message = a.send(thread["id"], "a photo, soon deleted"), a.send(thread["id"], "a photo that stays")
    gone, kept = uploaded(api, alice.access, "gone.png", gone_data), uploaded(api, alice.access, "kept.png", kept_data)
    ok_data(bind(a, gone_message["id"], [gone["id"]]), "add_attachments")
    ok_data(bind(a, kept_message["id"], [kept["id"]]), "add_attachments")
    assert_served(gone, gone_data)

    a.ok("delete_message", {"messageIds": [gone_message["id"]]})
    wait_until_gone(gone["url"], "the deleted message's file")
    assert_served(kept, kept_data)
    # Bob, who acknowledged nothing, gets the ATTACHMENT_ADDED events again without the URL.
    b.wait_for(named("bulk_message_deleted", thread["id"]), "bulk_message_deleted")
    added = {e["data"]["messageId"]: e["data"]["attachments"] for e in b.sync(0)["events"] if e["type"] == "ATTACHMENT_ADDED"}
    assert added[gone_message["id"]] == [] and [x["id"] for x in added[kept_message["id"]]] == [kept["id"]], added
    # The upload goes with its file (its row right after): it cannot be bound again.
    err_ack(bind(a, kept_message["id"], [gone["id"]]), ("not_found", "conflict"), "binding the deleted message's upload")


def test_a_deletion_media_cannot_read_is_dead_lettered_and_later_ones_still_apply(api, alice, pair):
    marker = uuid.uuid4().hex
    poisons = {f"e2e-media-poison-{marker}-text": b"not json", f"e2e-media-poison-{marker}-shape": b'{"data": 5}'}
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for message_id, body in poisons.items():  # straight to media's queue: no other consumer sees them
            channel.basic_publish("", "media.messages-deleted", body,
                                  pika.BasicProperties(delivery_mode=2, message_id=message_id), mandatory=True)
    finally:
        connection.close()
    dead = take_dead_letters("media.messages-deleted.dead", set(poisons), timeout=20)
    assert {k: body for k, (_, body) in dead.items()} == poisons

    a, _, thread = pair
    data = png(4, 7)
    message = a.send(thread["id"], "after the poison")
    attachment = uploaded(api, alice.access, "after.png", data)
    ok_data(bind(a, message["id"], [attachment["id"]]), "add_attachments")
    a.ok("delete_message", {"messageIds": [message["id"]]})
    wait_until_gone(attachment["url"], "the file of a message deleted after the poison")


def test_an_upload_while_media_is_down_is_refused_within_seconds_not_after_the_upload_timeout(api, alice, pair):
    """An upload may take 120 s (media may be sending it on to Cloudinary), so the gateway pings
    media first: when media is down the caller hears `unavailable` after the ping's 3 s, and the
    socket's later commands do not wait behind it. The bound asserted, 60 s, only tells the two
    apart."""
    a, _, thread = pair
    message = a.send(thread["id"], "a file while media is down")
    services("stop", "media")
    try:
        started = time.monotonic()
        assert_error(upload(api, alice.access, "down.png", png(2, 2)), 503, "unavailable")
        files = [{"fileName": "down.png", "contentType": "image/png", "data": png(2, 2)}]
        err_ack(a.call("add_attachments", {"messageId": message["id"], "files": files}), "unavailable", "files, media down")
        assert time.monotonic() - started < 60, "the uploads waited for the whole upload timeout"
        assert a.call("ping", "after the uploads") == {"ok": True, "data": {"pong": "after the uploads"}}
    finally:
        services("start", "media")
    ok_data(a.call("add_attachments", {"messageId": message["id"], "files": files}), "files, media back")


def gateway_readiness() -> tuple[int, dict[str, Any]]:
    resp = requests.get(f"{GATEWAY_URL}/readyz", timeout=10)
    return resp.status_code, resp.json()


def test_the_gateways_readyz_says_media_is_down_while_it_is(api):
    # protocol.md: /readyz is 200 "when every dependency answers"; the services behind the
    # gateway are dependencies. Until the fifty-eighth session it looked at RabbitMQ and Redis
    # only, and was 200 with media down.
    status, body = gateway_readiness()
    assert status == 200 and all(body.get(s) == "up" for s in ("auth", "messaging", "media", "delivery")), body
    services("stop", "media")
    try:
        # Media last answered up to 5 s ago; then a ping to it goes unanswered for 2 s. The
        # others must answer theirs meanwhile: a probe during a stall of this shared machine
        # may find one of them slow too, so the test waits for an answer with media alone down.
        def media_alone_down(readiness: tuple[int, dict]) -> bool:
            status, body = readiness
            return status == 503 and body.get("media") == "down" and all(
                body.get(s) == "up" for s in ("auth", "messaging", "delivery"))

        deadline = time.monotonic() + 30
        while not media_alone_down(readiness := gateway_readiness()) and time.monotonic() < deadline:
            time.sleep(0.5)
        status, body = readiness
        assert status == 503 and body.get("media") == "down" and body.get("status") == "not_ready", body
        assert all(body.get(s) == "up" for s in ("auth", "messaging", "delivery")), body
        # The admin port's is the process's own, for load balancers: one service down does not
        # take every gateway out of rotation.
        admin = requests.get(f"http://127.0.0.1:{os.environ.get('GATEWAY_ADMIN_PORT', '9100')}/readyz", timeout=10)
        assert admin.status_code == 200 and "media" not in admin.json(), admin.text
    finally:
        services("start", "media")
    deadline = time.monotonic() + 30
    while (readiness := gateway_readiness())[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert readiness[0] == 200 and readiness[1].get("media") == "up", readiness


def test_add_attachments_with_the_same_files_again_gives_the_attachments_the_message_has(api, alice, bob, pair):
    """A client that lost the answer to add_attachments with files sends it again: the files
    travel again, but the message keeps one copy of each (the answer names the attachments it
    has, no second attachment_added), and the repeated uploads are marked for removal. A different file,
    or the same bytes under another name, is a new attachment. Until the forty-seventh session
    the message got every file twice."""
    a, b, thread = pair
    message = a.send(thread["id"], "sent twice")
    files = [{"fileName": "twice.png", "contentType": "image/png", "data": png(3, 2)},
             {"fileName": "also.png", "contentType": "image/png", "data": png(2, 3)}]
    since_b = b.mark()
    first = ok_data(a.call("add_attachments", {"messageId": message["id"], "files": files}), "first")
    b.wait_for(named("attachment_added", thread["id"], message["id"]), "attachment_added", since=since_b)
    since_b = b.mark()
    again = ok_data(a.call("add_attachments", {"messageId": message["id"], "files": files}), "again")
    assert [x["id"] for x in again["attachments"]] == [x["id"] for x in first["attachments"]], (first, again)
    other = ok_data(a.call("add_attachments", {"messageId": message["id"], "files": [
        {"fileName": "renamed.png", "contentType": "image/png", "data": png(3, 2)}]}), "renamed")
    assert other["attachments"][0]["id"] not in {x["id"] for x in first["attachments"]}
    read = attachments_of(api, bob, thread["id"], message["id"])
    assert sorted(x["fileName"] for x in read["attachments"]) == ["also.png", "renamed.png", "twice.png"], read
    # Bob heard of the renamed file alone after the first command.
    added = b.wait_for(named("attachment_added", thread["id"], message["id"]), "attachment_added", since=since_b)
    assert [x["fileName"] for x in added.data["attachments"]] == ["renamed.png"], added.data
    # The repeats were marked for removal (the clean-up deletes their files): no upload of
    # these names is left unbound and unmarked.
    left = psql(f"SELECT count(*) FROM media.attachments WHERE owner_id = '{alice.id}' "
                f"AND file_name IN ('twice.png', 'also.png') AND message_id IS NULL AND removal_marked_at IS NULL")
    assert left == "0", f"{left} repeated uploads left"


def test_two_add_attachments_with_the_same_file_at_once_bind_it_once(api, open_socket, alice, pair):
    """Two of Alice's devices send add_attachments at the same moment, each with its own upload
    of one file (a retry racing the command whose answer was lost, on another connection): the
    message gets the file once, both answers name that attachment, and the other upload is
    marked for removal. Until the forty-ninth session each command could read the message's
    attachments before the other's bind, and both bound the file."""
    a, _, thread = pair
    a2 = open_socket(alice, label="alice-2")
    for round_ in range(8):
        message = a.send(thread["id"], f"at once {round_}")
        data = png(5, round_ + 1)
        uploads = [uploaded(api, alice.access, "once.png", data)["id"] for _ in range(2)]
        start = threading.Barrier(2)

        def attach(device: Device, upload_id: str) -> Any:
            start.wait(timeout=10)
            return bind(device, message["id"], [upload_id])

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(attach, (a, a2), uploads))
        named_ = {ok_data(answer, "add_attachments at once")["attachments"][0]["id"] for answer in answers}
        assert len(named_) == 1, (round_, answers)
        read = attachments_of(api, alice, thread["id"], message["id"])
        assert [x["id"] for x in read["attachments"]] == list(named_), (round_, read)
        unmarked = psql(f"SELECT count(*) FROM media.attachments WHERE id IN ('{uploads[0]}', '{uploads[1]}') "
                        f"AND message_id IS NULL AND removal_marked_at IS NULL")
        assert unmarked == "0", f"round {round_}: {unmarked} repeated upload left unbound and unmarked"


def test_a_refused_add_attachments_does_not_unbind_a_file_another_command_was_answered_with(api, open_socket, alice,
                                                                                             pair):
    """A message has 49 attachments. One device adds a file F and one more (51: refused, past
    the limit of 50); another device, at the same moment, adds its own upload of F again, and is
    answered with the first command's upload of F (a repeat), which messaging records. The
    refused command must not unbind that upload: the message shows it, and media must keep
    its file. Until the forty-ninth session a refusal gave back every upload its command had
    bound, and the clean-up later deleted the file of an attachment the message kept."""
    a, _, thread = pair
    a2 = open_socket(alice, label="alice-2")
    for round_ in range(6):
        message = a.send(thread["id"], f"full {round_}")
        filler = [uploaded(api, alice.access, f"fill{n}.png", png(2, n + 1))["id"] for n in range(49)]
        for start in range(0, 49, 20):
            ok_data(bind(a, message["id"], filler[start:start + 20]), "filling the message")
        data = png(7, round_ + 3)
        first = uploaded(api, alice.access, "f.png", data)["id"]
        extra = uploaded(api, alice.access, "extra.png", png(3, 9))["id"]
        again = uploaded(api, alice.access, "f.png", data)["id"]
        start = threading.Barrier(2)

        def attach(device: Device, ids: list[str]) -> Any:
            start.wait(timeout=10)
            return bind(device, message["id"], ids)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            refused, answered = pool.map(attach, (a, a2), ([first, extra], [again]))
        err_ack(refused, "invalid_argument", "past the message's 50 attachments")
        named_ = ok_data(answered, "the same file again")["attachments"][0]["id"]
        read = attachments_of(api, alice, thread["id"], message["id"])
        assert named_ in {x["id"] for x in read["attachments"]} and len(read["attachments"]) == 50, (round_, read)
        bound = psql(f"SELECT message_id FROM media.attachments WHERE id = '{named_}' AND removal_marked_at IS NULL")
        assert bound == message["id"], f"round {round_}: the upload the message shows is {bound or 'gone'} in media"


def test_add_attachments_refuses_bad_requests(api, alice, pair):
    a, _, thread = pair
    message = a.send(thread["id"], "bad requests")
    err_ack(bind(a, message["id"], [str(uuid.uuid4())]), "not_found", "an unknown attachment id")
    upload_ = uploaded(api, alice.access, "x.png", png(1, 1))
    err_ack(bind(a, str(uuid.uuid4()), [upload_["id"]]), ("not_found", "forbidden"), "an unknown message id")
    err_ack(bind(a, message["id"], []), "invalid_argument", "no attachment ids")
    err_ack(a.call("add_attachments", {"messageId": message["id"], "attachmentIds": "nope"}), "invalid_argument",
            "attachmentIds not a list")
    err_ack(a.call("add_attachments", {"messageId": "nope", "attachmentIds": [upload_["id"]]}), "invalid_argument",
            "a malformed messageId")
    err_ack(a.call("add_attachments", {"messageId": message["id"], "files": [{"fileName": "a.txt", "data": "text"}]}),
            "invalid_argument", "files[].data not binary")
    said = err_ack(a.call("add_attachments", {"messageId": message["id"], "files": [{"fileName": 5, "data": b"x"}]}),
                   "invalid_argument", "files[].fileName not a string")
    assert "fileName" in said, said
    said = err_ack(a.call("add_attachments", {"messageId": message["id"], "files": 5}), "invalid_argument", "files not a list")
    assert "files" in said, said
    both = {"messageId": message["id"], "attachmentIds": [upload_["id"]],
            "files": [{"fileName": "b.png", "contentType": "image/png", "data": png(1, 1)}]}
    said = err_ack(a.call("add_attachments", both), "invalid_argument", "attachmentIds and files together")
    assert "attachmentIds" in said and "files" in said, said
    # None of it bound the upload.
    ok_data(bind(a, message["id"], [upload_["id"]]), "add_attachments after the refusals")


# --- binary files through the socket ---------------------------------------------------------------


def test_add_attachments_with_binary_files_stores_and_binds_them(api, alice, bob, pair):
    a, b, thread = pair
    message = a.send(thread["id"], "two files over the socket")
    picture, notes = png(6, 2), "line one\nline two ✓\n".encode()
    since_b = b.mark()
    reply = ok_data(a.call("add_attachments", {
        "messageId": message["id"],
        "files": [
            {"fileName": "socket.png", "contentType": "application/octet-stream", "data": picture},
            {"fileName": "notes.txt", "contentType": "text/plain", "data": notes},
        ],
    }), "add_attachments with files")
    attachments = reply.get("attachments")
    assert isinstance(attachments, list) and len(attachments) == 2, short(reply)
    first, second = attachments
    assert_attachment(first, kind="IMAGE", content_type="image/png", size=len(picture), width=6, height=2,
                      message_id=message["id"])
    assert_attachment(second, kind="FILE", content_type="text/plain", size=len(notes), message_id=message["id"])
    assert first["fileName"] == "socket.png" and second["fileName"] == "notes.txt", attachments
    assert_served(first, picture)
    assert_served(second, notes)

    ev = b.wait_for(named("attachment_added", thread["id"], message["id"]), "attachment_added", since=since_b)
    assert_event(ev)
    assert [x["id"] for x in ev.data.get("attachments", [])] == [first["id"], second["id"]], ev.data
    read = attachments_of(api, bob, thread["id"], message["id"])
    assert [x["id"] for x in read["attachments"]] == [first["id"], second["id"]], read


def test_a_binary_file_of_no_accepted_type_is_refused_over_the_socket(pair):
    a, _, thread = pair
    message = a.send(thread["id"], "noise")
    err_ack(a.call("add_attachments", {"messageId": message["id"],
                                       "files": [{"fileName": "noise.png", "contentType": "image/png", "data": binary_noise()}]}),
            "invalid_argument", "add_attachments with noise")


def test_files_of_a_refused_add_attachments_are_not_kept(alice, bob, pair):
    """add_attachments with files stores each file, then binds them. When the bind is refused (a
    message of someone else) or a later file is (no accepted type), the files it stored go too,
    instead of staying a day, served, under ids the client never learnt."""
    a, b, thread = pair
    bobs = b.send(thread["id"], "bob's words")
    tag = uuid.uuid4().hex[:12]

    def stored(name: str) -> int:
        return int(psql(f"SELECT count(*) FROM media.attachments WHERE owner_id = '{alice.id}' AND file_name = '{name}'"))

    err_ack(a.call("add_attachments", {"messageId": bobs["id"],
                                       "files": [{"fileName": f"{tag}-a.png", "contentType": "image/png", "data": png(2, 2)}]}),
            "forbidden", "files for someone else's message")
    err_ack(a.call("add_attachments", {"messageId": str(uuid.uuid4()),
                                       "files": [{"fileName": f"{tag}-b.png", "contentType": "image/png", "data": png(2, 2)}]}),
            "not_found", "files for no message")
    mine = a.send(thread["id"], "mine")
    err_ack(a.call("add_attachments", {"messageId": mine["id"], "files": [
        {"fileName": f"{tag}-c.png", "contentType": "image/png", "data": png(2, 2)},
        {"fileName": f"{tag}-d.png", "contentType": "image/png", "data": png(3, 3)},
        {"fileName": f"{tag}-e.png", "contentType": "image/png", "data": binary_noise()},
    ]}), "invalid_argument", "a third file of no accepted type")
    deadline = time.monotonic() + 10
    while any(stored(f"{tag}-{x}.png") for x in "abcd") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [stored(f"{tag}-{x}.png") for x in "abcd"] == [0, 0, 0, 0]


# --- ack helpers ------------------------------------------------------------------------------------


def ok_data(ack: Any, what: str) -> dict[str, Any]:
    assert isinstance(ack, dict) and ack.get("ok") is True, f"{what}: expected an ok ack, got {short(ack, 600)}"
    assert isinstance(ack.get("data"), dict), f"{what}: {short(ack, 600)}"
    return ack["data"]


def err_ack(ack: Any, codes: str | tuple[str, ...], what: str) -> str:
    wanted = {codes} if isinstance(codes, str) else set(codes)
    assert isinstance(ack, dict) and ack.get("ok") is False, f"{what}: expected an error {sorted(wanted)}, got {short(ack, 600)}"
    error = ack.get("error")
    assert isinstance(error, dict) and error.get("code") in wanted, f"{what}: expected {sorted(wanted)}, got {short(ack, 600)}"
    assert isinstance(error.get("message"), str) and error["message"].strip(), f"{what}: {short(ack)}"
    return error["message"]


# ==================================================================================================
# Cloudinary store (keep these last: the module-scoped fixture keeps the Cloudinary-backed media
# service until the module ends)
# ==================================================================================================


def test_unbound_uploads_are_removed_after_their_lifetime_and_bound_ones_stay(api, alice, pair):
    """Media restarted with a 6 s lifetime for unbound uploads and a 1 s clean-up period (6 s:
    the kept upload must be bound within it, on a media process that has just started)."""
    a, _, thread = pair
    stop_media()
    short = start_local_media("media-cleanup.log", MEDIA_UNBOUND_TTL_SECONDS="6", MEDIA_CLEANUP_INTERVAL_SECONDS="1")
    try:
        kept_data, dropped_data = png(4, 4), png(5, 5)
        message = a.send(thread["id"], "keeps its picture")
        kept = uploaded(api, alice.access, "kept.png", kept_data)
        ok_data(bind(a, message["id"], [kept["id"]]), "add_attachments")
        dropped = uploaded(api, alice.access, "dropped.png", dropped_data)
        wait_until_gone(dropped["url"], "the unbound upload", timeout=30)
        assert_served(kept, kept_data)
        err_ack(bind(a, message["id"], [dropped["id"]]), "not_found", "binding a removed upload")
    finally:
        stop_process(short)
        start_media()


def test_a_users_unbound_uploads_are_bounded_in_bytes(api, account, open_socket):
    """Media restarted with MEDIA_UNBOUND_BYTES_PER_USER=5000 (and files of at most 5,000 bytes): an upload that would take a
    user's uploads not yet bound to a message past it is 429 `rate_limited` with Retry-After,
    another user's is not, and binding makes room. Until the forty-fifth session nothing bounded
    the bytes, and one account could fill the store."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    thread = a.dm(bob.id)
    stop_media()
    bounded = start_local_media("media-unbound-bytes.log", MEDIA_UNBOUND_BYTES_PER_USER="5000",
                                MEDIA_MAX_UPLOAD_BYTES="5000")
    try:
        data = b"x" * 3000 + b"\n"
        first = uploaded(api, alice.access, "first.txt", data, "text/plain")
        refused = upload(api, alice.access, "second.txt", data, "text/plain")
        assert_error(refused, 429, "rate_limited")
        assert refused.headers.get("Retry-After") == "60", refused.headers
        uploaded(api, bob.access, "bobs.txt", data, "text/plain")
        message = a.send(thread["id"], "makes room")
        ok_data(bind(a, message["id"], [first["id"]]), "add_attachments")
        uploaded(api, alice.access, "second.txt", data, "text/plain")
    finally:
        stop_process(bounded)
        start_media()


def test_a_file_stored_by_an_upload_that_crashed_before_its_row_is_removed(api, alice):
    """Media dies right after storing a file (`FAULT_POINTS=after_store`), before the upload's
    row is written. The next media gets the request again (it was never acknowledged) and answers
    it `unavailable`, storing nothing, and its clean-up removes the first attempt's file, which no
    row names; until the forty-fourth session that file stayed in the store for good. An upload
    then goes through."""
    media_dir = pathlib.Path(local_env().get("MEDIA_DIR") or ROOT / ".run" / "media")
    folders_before = set(os.listdir(media_dir)) if media_dir.is_dir() else set()
    stop_media()
    crashing = start_local_media("media-after-store.log", FAULT_POINTS="after_store")
    replacement = None
    data = png(6, 7)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            session = requests.Session()
            answer = pool.submit(lambda: session.post(
                api.url("/api/attachments"), headers={"Authorization": f"Bearer {alice.access}"},
                files={"file": ("crash.png", data)}, timeout=150))
            crashing.wait(timeout=60)
            orphans = set(os.listdir(media_dir)) - folders_before
            assert len(orphans) == 1, f"the crashed upload's file: expected one new folder, got {sorted(orphans)}"
            replacement = start_local_media(
                "media-after-store.log", MEDIA_UNBOUND_TTL_SECONDS="3", MEDIA_CLEANUP_INTERVAL_SECONDS="1")
            resp = answer.result(timeout=150)
        # Delivered again, the request's deadline counts as passed (RPC, docs/foundation.md): 503.
        assert resp.status_code == 503, f"the upload delivered again: {describe(resp)}"
        (orphan,) = orphans
        deadline = time.monotonic() + 30
        while (media_dir / orphan).exists():
            assert time.monotonic() < deadline, f"the crashed upload's file {orphan} is still in the store"
            time.sleep(0.2)
        assert psql(f"SELECT count(*) FROM media.uploads_in_progress WHERE storage_key LIKE '{orphan}/%'") == "0"
        assert set(os.listdir(media_dir)) - folders_before == set(), "the request delivered again stored a file"
        uploaded(api, alice.access, "after.png", data)
    finally:
        stop_process(replacement)
        if crashing.poll() is None:
            stop_process(crashing)
        start_media()


def stop_media() -> None:
    """Stops the media that scripts/services.sh runs."""
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "stop", "media"], check=True, capture_output=True,
                   timeout=120)


def start_media() -> None:
    """Starts the media that scripts/services.sh runs again."""
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "start", BIN_DIR.name, "media"], check=True,
                   capture_output=True, timeout=120)


def start_local_media(log_name: str, **overrides: str) -> subprocess.Popen:
    """The media binary with the local store and `overrides`, once it is ready; its output
    appended to `.run/logs/<log_name>`."""
    env = {**local_env(), **os.environ, "ENV_FILE": "/dev/null", **overrides}
    for key in ("CLOUDINARY_URL", "CLOUDINARY_CLOUD_NAME"):
        env.pop(key, None)
    with open(ROOT / ".run" / "logs" / log_name, "a") as log:
        process = subprocess.Popen([str(BIN_DIR / "media")], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    problem = not_ready(MEDIA_READY_URL, MEDIA_START_TIMEOUT, process)
    if problem:
        stop_process(process)
        pytest.fail(f"media with {overrides}: {problem}")
    return process


def local_env() -> dict[str, str]:
    """KEY=value lines of .run/local.env (what scripts/services.sh gives the services)."""
    path = ROOT / ".run" / "local.env"
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                values[key.strip()] = value
    return values


class CloudMedia:
    """The media binary, started by this module with the Cloudinary store on a fake server."""

    def __init__(self, fake: FakeCloudinary) -> None:
        self.fake = fake
        self.process: subprocess.Popen | None = None
        self.log_path = ROOT / ".run" / "logs" / "media-cloudinary.log"

    def environment(self, **overrides: str) -> dict[str, str]:
        env = {**local_env(), **os.environ}
        for key in ("CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET", "CLOUDINARY_FOLDER"):
            env.pop(key, None)
        env.update({
            "CLOUDINARY_URL": self.fake.cloudinary_url(),
            "CLOUDINARY_UPLOAD_PREFIX": self.fake.base_url,
            "CLOUDINARY_TIMEOUT_MS": str(CLOUDINARY_TIMEOUT_MS),
            "CLOUDINARY_ATTEMPTS": str(CLOUDINARY_ATTEMPTS),
            "ENV_FILE": "/dev/null",
        })
        env.update(overrides)
        return env

    def start(self, **overrides: str) -> None:
        assert self.process is None, "already started"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(f"\n----- started by test_media.py at {time.strftime('%H:%M:%S')} -----\n")
            log.flush()
            self.process = subprocess.Popen([str(BIN_DIR / "media")], env=self.environment(**overrides), cwd=ROOT,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        problem = not_ready(MEDIA_READY_URL, MEDIA_START_TIMEOUT, self.process)
        if problem:
            pytest.fail(f"the Cloudinary-backed media: {problem}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the process this module started (by its pid), SIGKILL after 40 s."""
        process, self.process = self.process, None
        stop_process(process)

    def restart(self, **overrides: str) -> None:
        self.stop()
        self.start(**overrides)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="module")
def cloud_media() -> Any:
    """The fake Cloudinary and the media service running on it (the normal media service is
    stopped meanwhile and started again after)."""
    if not (BIN_DIR / "media").is_file():
        pytest.fail(f"no media binary at {BIN_DIR / 'media'}; MESSENGER_BIN_DIR?", pytrace=False)
    fake = FakeCloudinary().start()
    media = CloudMedia(fake)
    try:
        services("stop", "media")
        media.start()
        yield media
    finally:
        try:
            media.stop()
        finally:
            fake.stop()
            services("start", "media", check=False)
            try:
                status = requests.get(MEDIA_READY_URL, timeout=3).status_code
            except requests.RequestException as exc:
                status = exc
            assert status == 200, f"the normal media service did not come back: /readyz {status}"


@pytest.fixture
def cloud(cloud_media: CloudMedia) -> Any:
    """The Cloudinary-backed media with a clean fake (no faults, empty record) for one test."""
    cloud_media.fake.reset()
    try:
        yield cloud_media
    finally:
        cloud_media.fake.reset()


def test_cloudinary_upload_is_signed_and_served_from_its_secure_url(api, alice, cloud):
    fake = cloud.fake
    data = png(12, 8)
    attachment = uploaded(api, alice.access, "../cloud photo.png", data)
    assert_attachment(attachment, kind="IMAGE", content_type="image/png", size=len(data), width=12, height=8)

    seen = fake.uploads_seen()
    assert len(seen) == 1, f"expected one upload call, got {[(r.path, r.status) for r in fake.requests]}"
    call = seen[0]
    assert call.path == f"/v1_1/{fake.cloud_name}/image/upload", call.path
    assert call.status == 200 and call.signature_valid is True, (call.status, call.string_to_sign, call.params)
    assert call.params.get("api_key") == fake.api_key, call.params
    assert abs(int(call.params["timestamp"]) - time.time()) < 120, call.params
    public_id = call.params.get("public_id", "")
    assert len(public_id) >= 16, f"an unguessable public_id, got {public_id!r}"
    # Cloudinary's scheme, computed here independently of the fake.
    signed = sorted((k, v) for k, v in call.params.items() if k not in ("api_key", "signature", "file") and v)
    expected = hashlib.sha1(("&".join(f"{k}={v}" for k, v in signed) + fake.api_secret).encode()).hexdigest()
    assert call.params["signature"] == expected, (call.params, string_to_sign(call.params))
    assert call.file_size == len(data) and (call.file_name or "").endswith(".png"), (call.file_name, call.file_size)

    stored = fake.stored(public_id, "image")
    assert stored is not None and stored.data == data, "the fake holds other bytes than those uploaded"
    assert attachment["url"] == fake.secure_url(stored), (attachment["url"], fake.secure_url(stored))
    resp = fetch(attachment["url"])
    assert resp.status_code == 200 and resp.content == data, describe(resp)
    assert resp.headers.get("Content-Type", "").startswith("image/png"), resp.headers


def test_cloudinary_files_of_a_deleted_message_are_destroyed_and_invalidated(api, alice, pair, cloud):
    fake = cloud.fake
    a, _, thread = pair
    attachment = uploaded(api, alice.access, "cloud gone.png", png(9, 9))
    public_id = fake.uploads_seen()[0].params["public_id"]
    message = a.send(thread["id"], "a photo in the cloud")
    ok_data(bind(a, message["id"], [attachment["id"]]), "add_attachments")
    assert fetch(attachment["url"]).status_code == 200

    a.ok("delete_message", {"messageIds": [message["id"]]})
    deadline = time.monotonic() + 15
    while fake.stored(public_id, "image") is not None:
        assert time.monotonic() < deadline, "the deleted message's file was not destroyed"
        time.sleep(0.2)
    destroys = [r for r in fake.requests if r.action == "destroy"]
    assert len(destroys) == 1, [(r.path, r.params) for r in destroys]
    call = destroys[0]
    assert call.path == f"/v1_1/{fake.cloud_name}/image/destroy" and call.status == 200, (call.path, call.status)
    assert call.signature_valid is True, (call.string_to_sign, call.params)
    assert (call.params.get("public_id"), call.params.get("invalidate")) == (public_id, "true"), call.params
    assert fetch(attachment["url"]).status_code == 404


def test_a_deletion_is_marked_at_once_while_cloudinary_hangs_over_the_files_of_earlier_ones(api, alice, pair, cloud):
    """Cloudinary answers nothing in time (every destroy waits out its attempts). Deleting a
    message with three files, then another message, must mark the second's file (it is no longer
    served) at once: until the forty-fifth session the consumer removed the first's files, about
    5 s each, before it took the next deletion, which stayed unmarked and served meanwhile."""
    fake = cloud.fake
    a, _, thread = pair
    first = a.send(thread["id"], "three photos")
    files = [uploaded(api, alice.access, f"hang {n}.png", png(4 + n, 4)) for n in range(3)]
    ok_data(bind(a, first["id"], [f["id"] for f in files]), "add_attachments")
    second = a.send(thread["id"], "one photo")
    last = uploaded(api, alice.access, "hang last.png", png(3, 3))
    ok_data(bind(a, second["id"], [last["id"]]), "add_attachments")

    fake.delay(3 * CLOUDINARY_TIMEOUT_MS / 1000)  # every destroy attempt times out
    try:
        a.ok("delete_message", {"messageIds": [first["id"]]})
        time.sleep(1.0)  # the first deletion's removals are under way
        a.ok("delete_message", {"messageIds": [second["id"]]})
        deadline = time.monotonic() + 10  # the first deletion's removals take about 13 s
        marked = ""
        while marked != "1" and time.monotonic() < deadline:
            marked = psql(f"SELECT count(*) FROM media.attachments WHERE id = '{last['id']}' "
                          "AND removal_marked_at IS NOT NULL")
            time.sleep(0.1)
    finally:
        fake.reset()
    assert marked == "1", "the second deletion's file was not marked while the first's files were being removed"


@pytest.mark.parametrize(
    "file_name, data, resource_type, kind",
    [("clip.wav", wav(), "video", "AUDIO"), ("notes.txt", b"some notes\n", "raw", "FILE")],
    ids=["audio-as-video", "text-as-raw"],
)
def test_cloudinary_resource_type_follows_the_content(api, alice, cloud, file_name, data, resource_type, kind):
    attachment = uploaded(api, alice.access, file_name, data)
    assert_attachment(attachment, kind=kind, size=len(data))
    seen = cloud.fake.uploads_seen()
    assert [r.path for r in seen] == [f"/v1_1/{cloud.fake.cloud_name}/{resource_type}/upload"], [r.path for r in seen]
    assert seen[0].signature_valid is True and seen[0].status == 200, seen[0]
    resp = fetch(attachment["url"])
    assert resp.status_code == 200 and resp.content == data, describe(resp)


@pytest.mark.parametrize(
    "file_name, data, extension, content_type",
    [("notes.txt", b"some notes\n", "txt", "text/plain"), ("report", PDF, "pdf", "application/pdf")],
    ids=["text", "pdf-without-a-name-extension"],
)
def test_cloudinary_raw_file_id_ends_in_its_extension(api, alice, cloud, file_name, data, extension, content_type):
    """Cloudinary serves a raw file at its id as given, typed by the id's extension (an image's
    or a video's format is kept apart and added to the URL). The id media asks for therefore ends
    in the extension of the detected type, whatever the upload's name (until the fifty-ninth
    session it was the bare token, and a PDF came back untyped, with no extension)."""
    attachment = uploaded(api, alice.access, file_name, data)
    seen = cloud.fake.uploads_seen()
    assert len(seen) == 1 and seen[0].status == 200, seen
    assert seen[0].params.get("public_id", "").endswith(f".{extension}"), seen[0].params
    assert attachment["url"].endswith(f".{extension}"), attachment["url"]
    resp = fetch(attachment["url"])
    assert resp.status_code == 200 and resp.content == data, describe(resp)
    assert resp.headers["Content-Type"].startswith(content_type), describe(resp)
    # The recorded key is the id Cloudinary was given, so deleting the message destroys it.
    assert cloud.fake.stored(seen[0].params["public_id"], "raw") is not None


def test_cloudinary_folder_is_the_start_of_the_signed_public_id(api, alice, cloud):
    """The folder goes in the `public_id` itself, not in a `folder` parameter, whose joining to
    the id differs between Cloudinary's fixed and dynamic folder modes (until the fifty-fourth
    session it went apart, and the key recorded before the upload could differ from the id
    Cloudinary gave; a review)."""
    try:
        cloud.restart(CLOUDINARY_FOLDER="e2e/chat")
        data = png(2, 2)
        attachment = uploaded(api, alice.access, "in-folder.png", data)
        seen = cloud.fake.uploads_seen()
        assert len(seen) == 1 and seen[0].status == 200 and seen[0].signature_valid is True, seen
        assert "folder" not in seen[0].params, seen[0].params
        assert seen[0].params.get("public_id", "").startswith("e2e/chat/"), seen[0].params
        assert "public_id=e2e/chat/" in (seen[0].string_to_sign or ""), seen[0].string_to_sign
        assert "/upload/e2e/chat/" in attachment["url"], attachment["url"]
        assert fetch(attachment["url"]).content == data
    finally:
        cloud.fake.reset()
        cloud.restart()


def test_cloudinary_file_of_an_upload_that_crashed_before_its_row_is_destroyed(api, alice, cloud):
    """As with the local store: media dies once Cloudinary stored the file (in a folder, so the
    key recorded before the upload must be the folder's path), and the next media's clean-up
    destroys it."""
    try:
        cloud.restart(CLOUDINARY_FOLDER="e2e/crash", FAULT_POINTS="after_store")
        crashing = cloud.process
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            session = requests.Session()
            answer = pool.submit(lambda: session.post(
                api.url("/api/attachments"), headers={"Authorization": f"Bearer {alice.access}"},
                files={"file": ("crash.png", png(3, 4))}, timeout=150))
            crashing.wait(timeout=60)
            seen = cloud.fake.uploads_seen()
            assert len(seen) == 1 and seen[0].status == 200, seen
            public_id = seen[0].params["public_id"]
            assert public_id.startswith("e2e/crash/"), public_id
            assert cloud.fake.stored(public_id) is not None, "the fake does not hold the crashed upload's file"
            cloud.restart(CLOUDINARY_FOLDER="e2e/crash", MEDIA_UNBOUND_TTL_SECONDS="3", MEDIA_CLEANUP_INTERVAL_SECONDS="1")
            assert answer.result(timeout=150).status_code == 503
        deadline = time.monotonic() + 30
        while cloud.fake.stored(public_id) is not None:
            assert time.monotonic() < deadline, f"the crashed upload's file {public_id} is still in Cloudinary"
            time.sleep(0.2)
        destroyed = [r for r in cloud.fake.requests if r.action == "destroy" and r.params.get("public_id") == public_id]
        assert destroyed and destroyed[0].signature_valid is True, destroyed
    finally:
        cloud.fake.reset()
        cloud.restart()


def test_cloudinary_wrong_secret_is_unavailable_to_the_client(api, alice, cloud):
    """Cloudinary refusing our own signature is our configuration, not the client's file: 503
    `unavailable`, with no word of Cloudinary's text (which names the key). Until the fortieth
    session it was 422 `invalid_argument` carrying "Invalid Signature ..."."""
    try:
        cloud.restart(CLOUDINARY_URL=cloud.fake.cloudinary_url(api_secret="not-the-secret"))
        message = assert_error(upload(api, alice.access, "a.png", png(2, 2)), 503, "unavailable")
        assert "Signature" not in message and "api_key" not in message, message
        seen = cloud.fake.uploads_seen()
        # Retrying would not help: one attempt.
        assert len(seen) == 1, f"a 401 must not be retried: {[(r.path, r.status) for r in seen]}"
        assert seen[0].status == 401 and seen[0].signature_valid is False, seen[0]
    finally:
        cloud.fake.reset()
        cloud.restart()
    # The right secret works again.
    uploaded(api, alice.access, "b.png", png(2, 2))


def test_cloudinary_plan_size_limit_is_payload_too_large_in_our_words(api, alice, cloud):
    """A file within our 25 MiB but over the Cloudinary account's plan limit: 413
    `payload_too_large`, as the contract has it for a file too large, without Cloudinary's text.
    Until the fifty-fourth session it was 422 `invalid_argument` quoting Cloudinary (a review)."""
    try:
        cloud.fake.limit_file_size(100)
        message = assert_error(upload(api, alice.access, "big.png", png(40, 40)), 413, "payload_too_large")
        assert "Got" not in message and "Maximum" not in message, message
        seen = cloud.fake.uploads_seen()
        assert len(seen) == 1 and seen[0].status == 400, f"a refused size must not be retried: {seen}"
    finally:
        cloud.fake.reset()
    uploaded(api, alice.access, "small.png", png(2, 2))


def test_cloudinary_refusing_our_path_is_unavailable_to_the_client(api, alice, cloud):
    """A 404 from Cloudinary (a cloud or upload prefix that does not exist) is our configuration
    too: 503 `unavailable`, with Cloudinary's text in the log only. Until the forty-second session
    every 4xx but 401/403 was the client's file: 422 with that text."""
    try:
        cloud.restart(CLOUDINARY_UPLOAD_PREFIX=cloud.fake.base_url + "/nowhere")
        message = assert_error(upload(api, alice.access, "a.png", png(2, 2)), 503, "unavailable")
        assert "route" not in message.lower() and "nowhere" not in message, message
    finally:
        cloud.fake.reset()
        cloud.restart()
    uploaded(api, alice.access, "b.png", png(2, 2))


def test_cloudinary_attempts_end_at_the_callers_deadline(alice, cloud):
    """An upload whose caller waits 3 s (the request's `expiration`) while Cloudinary answers in
    10, with attempts of 1.5 s: the second attempt gets what is left of the 3 s, no third
    follows, the answer is `unavailable`, and no attachment is recorded. Until the forty-second
    session every attempt had its full timeout whatever the caller's deadline (three of 60 s by
    default, past the gateway's 120 s), and a late one stored a file nobody was told of."""
    cloud.fake.delay(10)
    started = time.monotonic()
    answer = call_service("media", "media.upload.v1",
                        {"fileName": "late.png", "data": base64.b64encode(png(2, 2)).decode()}, waiting_ms=3000,
                          actor=alice.id)
    assert answer is not None, "no answer within 20 s"
    assert answer["ok"] is False and answer["error"]["code"] == "unavailable", answer
    # A third attempt would come past the 3 s: the count is read well after. (On a slow machine the
    # request may reach media so late that only one attempt fits.)
    time.sleep(max(0.0, started + 8 - time.monotonic()))
    assert 1 <= len(cloud.fake.uploads_seen()) <= 2, "attempts went on past the caller's deadline"
    assert psql(f"SELECT count(*) FROM media.attachments WHERE owner_id = '{alice.id}' AND file_name = 'late.png'") == "0"


def test_discarding_cloudinary_uploads_ends_at_the_callers_deadline(api, alice, cloud):
    """`discard_uploads` deletes files while its caller waits, and no longer: with Cloudinary
    answering in 10 s, attempts of 1.5 s and a caller that waits 3 s, the first file's attempts
    end at the 3 s, the second file is not tried, and both stay marked for the clean-up. Until
    the forty-third session every file had all its attempts (by default 20 files, 3 attempts of
    60 s each: an hour), holding one of media's request slots and a curl thread."""
    fake = cloud.fake
    first = uploaded(api, alice.access, "discard one.png", png(2, 2))
    second = uploaded(api, alice.access, "discard two.png", png(3, 3))
    first_key, second_key = (r.params["public_id"] for r in fake.uploads_seen())
    fake.delay(10)
    started = time.monotonic()
    answer = call_service("media", "media.discard_uploads.v1", {"attachmentIds": [first["id"], second["id"]]},
                          waiting_ms=3000, actor=alice.id)
    elapsed = time.monotonic() - started
    assert answer is not None and answer["ok"] is True, answer
    # Without the deadline: two files of three 1.5 s attempts each, 9 s.
    assert elapsed < 8, f"answered after {elapsed:.1f} s to a caller that waited 3 s"
    # The fake records a request when it answers it, 10 s after it came.
    time.sleep(max(0.0, started + 14 - time.monotonic()))
    # Only this test's files: the clean-up may still be removing an earlier test's.
    destroyed = [r.params.get("public_id") for r in fake.requests
                 if r.action == "destroy" and r.params.get("public_id") in (first_key, second_key)]
    assert destroyed and set(destroyed) == {first_key} and len(destroyed) <= 2, destroyed
    marked = psql("SELECT count(*) FROM media.attachments WHERE id IN "
                  f"('{first['id']}', '{second['id']}') AND removal_marked_at IS NOT NULL")
    assert marked == "2", f"{marked} of the 2 uploads are left marked for the clean-up"


def test_cloudinary_5xx_is_retried(api, alice, cloud):
    fake = cloud.fake
    fake.fail_next_uploads(1, status=500)
    data = png(3, 3)
    attachment = uploaded(api, alice.access, "retry.png", data)
    seen = fake.uploads_seen()
    assert [r.status for r in seen] == [500, 200], [(r.status, r.fault) for r in seen]
    assert seen[0].params.get("public_id") == seen[1].params.get("public_id"), "the retry is the same upload"
    assert seen[1].at - seen[0].at >= 0.09, f"no backoff between attempts: {seen[1].at - seen[0].at:.3f} s"
    stored = fake.stored(seen[1].params["public_id"], "image")
    assert stored is not None and attachment["url"] == fake.secure_url(stored), attachment
    assert fetch(attachment["url"]).content == data


def test_cloudinary_failing_every_attempt_is_unavailable_without_its_details(api, alice, cloud):
    """Cloudinary's text (or curl's, which may name a proxy or a host) goes to media's log, not to
    the client: until the forty-fifth session the 503 quoted it."""
    fake = cloud.fake
    fake.fail_next_uploads(CLOUDINARY_ATTEMPTS, status=502)
    message = assert_error(upload(api, alice.access, "failing.png", png(2, 2)), 503, "unavailable")
    fake.reset()
    assert "General Error" not in message and "502" not in message and "curl" not in message.lower(), message


def test_add_attachments_with_files_discards_those_stored_when_a_later_one_fails(alice, pair, cloud):
    """`add_attachments` with three files whose third Cloudinary refuses on every attempt: the
    command is `unavailable`, nothing was bound (the bind goes once every file is stored), so the
    two stored files are deleted at once rather than served for a day under ids the client never
    learnt. Until the fifty-second session only a refusal discarded them (a review)."""
    a, _, thread = pair
    message = a.send(thread["id"], "three files, the third one fails")
    fake = cloud.fake
    fake.fail_next_uploads(CLOUDINARY_ATTEMPTS, status=502, after=2)
    files = [{"fileName": f"part {n}.png", "contentType": "image/png", "data": png(n + 1, 2)} for n in range(3)]
    err_ack(a.call("add_attachments", {"messageId": message["id"], "files": files}), "unavailable", "third file fails")
    stored = [r.params["public_id"] for r in fake.uploads_seen() if r.status == 200]
    assert len(stored) == 2, [(r.status, r.fault) for r in fake.uploads_seen()]
    destroyed = [r.params.get("public_id") for r in fake.requests if r.action == "destroy"]
    assert sorted(destroyed) == sorted(stored), f"stored {stored}, destroyed {destroyed}"
    left = psql(f"SELECT count(*) FROM media.attachments WHERE owner_id = '{alice.id}' AND file_name LIKE 'part %' "
                "AND removal_marked_at IS NULL")
    assert left == "0", f"{left} of the stored files are left for the client to bind"


def test_cloudinary_timing_out_on_every_attempt_is_unavailable(api, alice, cloud):
    fake = cloud.fake
    fake.delay(3 * CLOUDINARY_TIMEOUT_MS / 1000)  # far beyond each attempt's timeout
    started = time.monotonic()
    message = assert_error(upload(api, alice.access, "slow.png", png(2, 2)), 503, "unavailable")
    elapsed = time.monotonic() - started
    seen = fake.uploads_seen()
    fake.reset()  # wakes the handlers still sleeping
    assert len(seen) == CLOUDINARY_ATTEMPTS, f"expected {CLOUDINARY_ATTEMPTS} attempts, got {len(seen)}: {message!r}"
    assert elapsed >= CLOUDINARY_ATTEMPTS * CLOUDINARY_TIMEOUT_MS / 1000 * 0.9, f"gave up too early: {elapsed:.1f} s"
    # Unbounded attempts would take the fake's whole delay each: 13.5 s.
    assert elapsed < 12, f"took {elapsed:.1f} s with a {CLOUDINARY_TIMEOUT_MS} ms timeout and {CLOUDINARY_ATTEMPTS} attempts"
    # Once Cloudinary answers again, uploads work.
    uploaded(api, alice.access, "fast.png", png(2, 2))
