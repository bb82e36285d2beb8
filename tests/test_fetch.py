"""``unseen data fetch`` against a small archive served on loopback (127.0.0.1, random port).

The server supports HTTP Range, can break a transfer off after some bytes (to test resume),
and logs the Range headers it receives. No test touches an external address.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import tiny_arrays, write_v5
from unseen.cli import main
from unseen.data import load_xlsa17
from unseen.data.fetch import Archive, download, fetch, unpack
from unseen.errors import DataError


class _Server:
    """Serves ``files`` (path -> bytes) with Range support; ``cut_after`` breaks the next
    full transfer off after that many bytes; ``ranges`` logs the Range headers seen."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True) -> None:
        self.files = files
        self.honour_range = honour_range
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                owner.ranges.append(rng)
                start = 0
                if rng and owner.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                data = body[start:]
                if owner.cut_after is not None:
                    data, owner.cut_after = data[: owner.cut_after], None
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tiny_zip(tmp_path: Path) -> bytes:
    """An xlsa17-style archive: ``xlsa17/data/TINY/{att_splits,res101}.mat`` + a README."""
    arrays = tiny_arrays()
    folder = tmp_path / "src"
    folder.mkdir()
    write_v5(folder / "att_splits.mat", arrays["att_splits"])
    write_v5(folder / "res101.mat", arrays["res101"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xlsa17/README.txt", "tiny test archive\n")
        zf.writestr("xlsa17/data/OTHER/att_splits.mat", b"not wanted")
        for name in ("att_splits.mat", "res101.mat"):
            zf.write(folder / name, f"xlsa17/data/TINY/{name}")
    return buf.getvalue()


def _table(url: str, body: bytes, sha: str | None = "ok") -> dict[str, Archive]:
    digest = hashlib.sha256(body).hexdigest() if sha == "ok" else sha
    return {"tiny": Archive("tiny", url, ("TINY",), size=len(body), sha256=digest)}


def test_interrupted_download_resumes_and_unpacks(tmp_path):
    body = _tiny_zip(tmp_path)
    with _Server({"/tiny.zip": body}) as srv:
        table = _table(srv.url + "/tiny.zip", body)
        srv.cut_after = len(body) // 3
        root = tmp_path / "data"
        with pytest.raises(DataError, match="run the same command again to resume"):
            fetch(["TINY"], root, archives=table, progress=False, log=lambda *_: None)
        part = root / ".downloads" / "tiny.zip.part"
        assert part.stat().st_size == len(body) // 3
        out = fetch(["TINY"], root, archives=table, progress=False, log=lambda *_: None)
        assert srv.ranges == [None, f"bytes={len(body) // 3}-"]
    assert out["tiny"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert not part.exists() and not (root / ".downloads" / "tiny.zip").exists()
    assert not (root / "OTHER").exists()  # only the wanted folders are unpacked
    ds = load_xlsa17(root, "TINY")  # the layout the loaders expect
    assert ds.features.shape == (30, 8)


def test_checksum_mismatch_is_refused_and_nothing_unpacked(tmp_path):
    body = _tiny_zip(tmp_path)
    with _Server({"/tiny.zip": body}) as srv:
        table = _table(srv.url + "/tiny.zip", body, sha="0" * 64)
        root = tmp_path / "data"
        with pytest.raises(DataError, match="checksum mismatch") as err:
            fetch(["TINY"], root, archives=table, progress=False, log=lambda *_: None)
    assert hashlib.sha256(body).hexdigest() in str(err.value)
    assert not (root / "TINY").exists()
    assert not list((root / ".downloads").glob("tiny.zip*"))  # the bad file is gone


def test_server_without_range_restarts_and_size_is_checked(tmp_path):
    body = _tiny_zip(tmp_path)
    with _Server({"/tiny.zip": body}, honour_range=False) as srv:
        dest = tmp_path / "d" / "tiny.zip"
        dest.parent.mkdir()
        Path(str(dest) + ".part").write_bytes(b"garbage that is not a prefix")
        digest = download(srv.url + "/tiny.zip", dest, size=len(body), progress=False)
        assert digest == hashlib.sha256(body).hexdigest()
        assert dest.read_bytes() == body
        with pytest.raises(DataError, match=r"bytes, expected 5\b"):
            download(srv.url + "/tiny.zip", tmp_path / "other.zip", size=5, progress=False)


def test_unreachable_address_says_where_to_put_files(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    table = {"tiny": Archive("tiny", f"http://127.0.0.1:{port}/x.zip", ("TINY",))}
    with pytest.raises(DataError) as err:
        fetch(["TINY"], tmp_path / "r", archives=table, progress=False, log=lambda *_: None)
    assert "cannot download" in str(err.value)


def test_unpack_refuses_unsafe_paths_and_keeps_existing_files(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("data/TINY/../../evil.txt", "x")
    with pytest.raises(DataError, match="unsafe path"):
        unpack(bad, tmp_path / "r", ["TINY"])
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("x/data/TINY/att_splits.mat", "new")
    mine = tmp_path / "r" / "TINY" / "att_splits.mat"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    assert unpack(good, tmp_path / "r", ["TINY"])["kept"] == [str(mine)]
    assert mine.read_text() == "mine"
    assert unpack(good, tmp_path / "r", ["TINY"], force=True)["written"] == [str(mine)]
    assert mine.read_text() == "new"


def test_cli_dry_run_and_local_archive(tmp_path, capsys):
    assert main(["data", "fetch", "FLO", "--root", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "cvpr18xian.zip" in out and str(tmp_path / "r" / "FLO") in out
    assert main(["data", "fetch", "NOPE", "--root", str(tmp_path)]) == 2
    # --archive with an archive lacking FLO: a clear error, exit code 2
    empty = tmp_path / "e.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x/readme.txt", "nothing")
    assert (
        main(["data", "fetch", "FLO", "--root", str(tmp_path / "r"), "--archive", str(empty)]) == 2
    )
    assert "holds no folder for FLO" in capsys.readouterr().err
