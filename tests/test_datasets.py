"""Tests for translate.data.known: everything is served from a local HTTP server, no internet needed."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
from httpserver import Server
from PIL import Image

from translate.data import known as ds
from translate.errors import DatasetError


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


CYCLE_FILES = {
    f"{split}/{i}.png": _png((i * 40, 0, 0)) for split in ("trainA", "trainB", "testA", "testB") for i in range(2)
}
PIX_FILES = {f"{split}/{i}.jpg": _png((0, i * 40, 0)) for split in ("train", "val", "test") for i in range(2)}


def _make_zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _serve_horse2zebra(server: Server) -> Path:
    return _make_zip(
        server.root / "cyclegan/datasets/horse2zebra.zip",
        {f"horse2zebra/{k}": v for k, v in CYCLE_FILES.items()},
    )


# --- configuration and lookup ---------------------------------------------------------------------------


def test_mirror_and_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRANSLATE_MIRROR", raising=False)
    assert ds.mirror() == ds.DEFAULT_MIRROR
    monkeypatch.setenv("TRANSLATE_MIRROR", "http://example.test/gans/")
    assert ds.mirror() == "http://example.test/gans"
    info = ds.KNOWN_DATASETS["cyclegan"]["horse2zebra"]
    assert ds.dataset_url(info) == "http://example.test/gans/cyclegan/datasets/horse2zebra.zip"
    monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path))
    assert ds.cache_dir() == tmp_path
    monkeypatch.delenv("TRANSLATE_HOME")
    assert ds.cache_dir() == Path("~/.cache/translate").expanduser()


def test_catalogue() -> None:
    assert set(ds.KNOWN_DATASETS) == {"cyclegan", "pix2pix"}
    assert len(ds.KNOWN_DATASETS["cyclegan"]) == 12 and len(ds.KNOWN_DATASETS["pix2pix"]) == 6
    for family, names in ds.KNOWN_DATASETS.items():
        for name, info in names.items():
            assert (info.name, info.family) == (name, family) and info.description
            assert info.path.startswith(f"/{family}/datasets/{name}.")
    assert ds.is_known("facades", "cyclegan") and ds.is_known("facades", "pix2pix")
    assert ds.is_known("edges2shoes", "pix2pix") and not ds.is_known("edges2shoes")
    assert ds.KNOWN_DATASETS["pix2pix"]["maps"].path == "/pix2pix/datasets/maps.tar.gz"


def test_unknown_name_suggests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path))
    assert "horse2zebra" in ds.close_matches("horse2zebr")
    with pytest.raises(DatasetError, match="horse2zebra") as exc:
        ds.prepare("horse2zebr")
    assert "translate datasets" in str(exc.value)
    with pytest.raises(DatasetError, match="pix2pix"):
        ds.prepare("edges2shoes")  # right name, wrong family
    with pytest.raises(DatasetError, match="family"):
        ds.prepare("horse2zebra", "stylegan")
    assert not (tmp_path / "datasets").exists()


# --- prepare() end to end ----------------------------------------------------------------------------


def test_prepare_cyclegan_download_extract_and_offline_reuse(server: Server, tmp_path: Path) -> None:
    served = _serve_horse2zebra(server)
    folder = ds.prepare("horse2zebra", progress=True)  # also exercises the rich progress bar

    home = tmp_path / "home" / "datasets" / "cyclegan"
    assert folder == home / "horse2zebra"
    for rel, data in CYCLE_FILES.items():
        assert (folder / rel).read_bytes() == data
    assert (folder / ".complete").is_file()
    record = json.loads((home / "horse2zebra.zip.json").read_text())
    assert record["sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
    assert record["bytes"] == served.stat().st_size
    assert record["url"] == f"{server.url}/cyclegan/datasets/horse2zebra.zip" and record["downloaded_at"]
    assert not list(home.glob(".*"))  # no temp files or staging folders left behind
    assert ("cyclegan", "horse2zebra", ds.KNOWN_DATASETS["cyclegan"]["horse2zebra"].description, True) in (
        ds.describe()
    )
    assert ("cyclegan", "monet2photo") in {(f, n) for f, n, _, cached in ds.describe() if not cached}

    server.stop()  # reuse must not touch the network
    assert ds.prepare("horse2zebra", progress=False) == folder


def test_prepare_pix2pix_tar_gz(server: Server) -> None:
    _make_tar(
        server.root / "pix2pix/datasets/facades.tar.gz",
        [_file(f"facades/{k}", v) for k, v in PIX_FILES.items()],
    )
    folder = ds.prepare("facades", "pix2pix", progress=False)
    assert folder.parts[-3:] == ("datasets", "pix2pix", "facades")
    for rel, data in PIX_FILES.items():
        assert (folder / rel).read_bytes() == data
    assert (folder.parent / "facades.tar.gz.json").is_file()
    assert not (folder.parent.parent / "cyclegan" / "facades").exists()


def test_interrupted_extraction_is_redone(server: Server) -> None:
    _serve_horse2zebra(server)
    folder = ds.prepare("horse2zebra", progress=False)
    (folder / ".complete").unlink()
    (folder / "trainA" / "0.png").unlink()
    server.stop()
    assert ds.prepare("horse2zebra", progress=False) == folder
    assert (folder / "trainA" / "0.png").read_bytes() == CYCLE_FILES["trainA/0.png"]
    assert (folder / ".complete").is_file()


@pytest.mark.parametrize("complete", [False, True])
def test_tampered_archive_refused(server: Server, complete: bool) -> None:
    _serve_horse2zebra(server)
    folder = ds.prepare("horse2zebra", progress=False)
    archive = folder.parent / "horse2zebra.zip"
    if not complete:
        (folder / ".complete").unlink()
    with open(archive, "ab") as f:
        f.write(b"tampered")
    server.stop()
    with pytest.raises(DatasetError, match="corrupt") as exc:
        ds.prepare("horse2zebra", progress=False)
    assert str(archive) in str(exc.value) and "Delete it" in str(exc.value)


# --- download() failures --------------------------------------------------------------------------------


def test_http_404(server: Server) -> None:
    with pytest.raises(DatasetError) as exc:
        ds.prepare("horse2zebra", progress=False)
    msg = str(exc.value)
    assert f"{server.url}/cyclegan/datasets/horse2zebra.zip" in msg and "404" in msg
    assert "TRANSLATE_MIRROR" in msg and "horse2zebra.zip" in msg
    home = Path(ds.cache_dir())
    assert not home.exists() or not [p for p in home.rglob("*") if p.is_file()]


def test_unreachable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path))
    monkeypatch.setenv("TRANSLATE_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(DatasetError, match=r"cannot download http://127\.0\.0\.1") as exc:
        ds.prepare("horse2zebra", progress=False)
    assert "TRANSLATE_MIRROR" in str(exc.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_download_checksum(server: Server, tmp_path: Path) -> None:
    (server.root / "blob.bin").write_bytes(b"hello" * 1000)
    good = hashlib.sha256(b"hello" * 1000).hexdigest()
    out = tmp_path / "dl"
    assert ds.download(f"{server.url}/blob.bin", out / "ok.bin", expected_sha256=good, progress=False) == good
    assert (out / "ok.bin").read_bytes() == b"hello" * 1000
    with pytest.raises(DatasetError, match="sha256"):
        ds.download(f"{server.url}/blob.bin", out / "bad.bin", expected_sha256="0" * 64, progress=False)
    assert _all_files(out) == {"ok.bin"}  # no partial file, no '.bad.bin.part'


# --- safe_extract() against malicious archives ----------------------------------------------------------


def _evil_zip(path: Path, name: str, attr: int = 0) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ds/trainA/ok.png", b"fine")
        info = zipfile.ZipInfo(name)
        info.external_attr = attr
        zf.writestr(info, b"evil")
    return path


def _assert_refused(archive: Path, target: Path, member: str, outside: list[Path], *, strip_root: bool = False) -> str:
    before = _all_files(target.parent)
    with pytest.raises(DatasetError) as exc:
        ds.safe_extract(archive, target, strip_root=strip_root)
    assert member in str(exc.value) and str(archive) in str(exc.value)
    assert not target.exists()
    assert _all_files(target.parent) == before  # no staging folder either
    for path in outside:
        assert not path.exists() and not path.is_symlink()
    return str(exc.value)


def test_zip_parent_traversal(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    archive = _evil_zip(tmp_path / "a.zip", "../evil.txt")
    _assert_refused(archive, tmp_path / "work" / "ds", "../evil.txt", [tmp_path / "work" / "evil.txt"])


def test_zip_absolute_path(tmp_path: Path) -> None:
    evil = tmp_path / "abs_evil.txt"
    archive = _evil_zip(tmp_path / "a.zip", str(evil))
    _assert_refused(archive, tmp_path / "out" / "ds", str(evil), [evil])


def test_zip_drive_letter_and_symlink(tmp_path: Path) -> None:
    archive = _evil_zip(tmp_path / "a.zip", "C:/evil.txt")
    _assert_refused(archive, tmp_path / "out" / "ds", "C:/evil.txt", [])
    archive = _evil_zip(tmp_path / "b.zip", "ds/link", attr=(stat.S_IFLNK | 0o777) << 16)
    _assert_refused(archive, tmp_path / "out" / "ds", "ds/link", [])


@pytest.mark.parametrize(
    ("member", "link"),
    [
        ("../evil.txt", None),
        ("ds/../../evil.txt", None),
        ("ds/passwd", "/etc/passwd"),
        ("ds/up", "../../outside"),
        ("ds/hard", "../outside"),
        ("ds/via", "dot/.."),  # lexically ds/, but ds/dot is itself a link to the root, so this is ../
    ],
)
def test_tar_traversal(tmp_path: Path, member: str, link: str | None) -> None:
    work = tmp_path / "work"
    work.mkdir()
    members = [_file("ds/trainA/ok.png")]
    if link is None:
        members.append(_file(member))
    elif member == "ds/via":
        members += [_link("ds/dot", ".."), _link(member, link)]  # ds/dot -> the archive root: fine alone
    else:
        members.append(_link(member, link, tarfile.LNKTYPE if member == "ds/hard" else tarfile.SYMTYPE))
    archive = _make_tar(tmp_path / "a.tar.gz", members)
    _assert_refused(archive, work / "ds", member, [tmp_path / "evil.txt", work / "evil.txt"])


def test_tar_absolute_path_and_special_files(tmp_path: Path) -> None:
    evil = tmp_path / "abs_evil.txt"
    archive = _make_tar(tmp_path / "a.tar.gz", [_file("ds/ok.png"), _file(str(evil))])
    _assert_refused(archive, tmp_path / "out" / "ds", str(evil), [evil])
    fifo = tarfile.TarInfo("ds/pipe")
    fifo.type = tarfile.FIFOTYPE
    archive = _make_tar(tmp_path / "b.tar", [_file("ds/ok.png"), (fifo, None)])
    _assert_refused(archive, tmp_path / "out" / "ds", "ds/pipe", [])
    archive = _make_tar(tmp_path / "c.tar.gz", [_link("ds/lnk", "sub"), _file("ds/lnk/evil.txt")])
    _assert_refused(archive, tmp_path / "out" / "ds", "ds/lnk/evil.txt", [])


def test_malicious_archive_via_prepare(server: Server, tmp_path: Path) -> None:
    _make_zip(
        server.root / "cyclegan/datasets/horse2zebra.zip",
        {"horse2zebra/trainA/0.png": b"ok", "../../../evil.txt": b"evil"},
    )
    with pytest.raises(DatasetError, match=r"\.\./\.\./\.\./evil\.txt"):
        ds.prepare("horse2zebra", progress=False)
    assert not (tmp_path / "home" / "datasets" / "cyclegan" / "horse2zebra").exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_safe_extract_allows_inner_symlink_and_replaces_target(tmp_path: Path) -> None:
    archive = _make_tar(tmp_path / "a.tar.gz", [_file("ds/train/a.png", b"A"), _link("ds/latest", "train/a.png")])
    target = tmp_path / "out" / "ds"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("old")
    ds.safe_extract(archive, target, strip_root=True)
    assert (target / "train" / "a.png").read_bytes() == b"A"
    assert (target / "latest").is_symlink() and (target / "latest").read_bytes() == b"A"
    assert not (target / "stale.txt").exists()
    assert _all_files(target.parent) == {"ds", "ds/train", "ds/train/a.png", "ds/latest"}


def test_corrupt_archive(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="corrupt"):
        ds.safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("member", "link"),
    [
        ("facades/train/up", "../.."),  # inside the archive, but above the dataset once facades/ is stripped
        ("facades/up", ".."),
        ("facades/a\\b", ".."),  # lands in facades/ (tarfile keeps the backslash), so it points above it
    ],
)
def test_symlink_escaping_the_stripped_root(tmp_path: Path, member: str, link: str) -> None:
    (tmp_path / "out").mkdir()
    archive = _make_tar(tmp_path / "a.tar.gz", [_file("facades/train/a.png", b"A"), _link(member, link)])
    _assert_refused(archive, tmp_path / "out" / "facades", repr(member), [], strip_root=True)  # named as repr()


def test_symlink_to_the_archive_root_is_fine_unstripped(tmp_path: Path) -> None:
    archive = _make_tar(tmp_path / "a.tar.gz", [_file("facades/train/a.png", b"A"), _link("facades/up", "..")])
    target = tmp_path / "out" / "ds"
    ds.safe_extract(archive, target)  # without strip_root the archive's root is the dataset, so `..` stays inside
    assert (target / "facades" / "up").resolve() == target.resolve()


# --- safe_extract() limits on what an archive expands to ------------------------------------------------------

_NOISE = random.Random(0).randbytes(2 << 20)  # incompressible: trips the size limit, never the ratio


def _deflated_zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _patch_zip_field(archive: Path, member: str, field: str, value: int) -> None:
    """Overwrite ``field`` ("crc" or "file_size") of ``member`` in both its local and its central-directory header."""
    local_at, central_at = {"crc": (14, 16), "file_size": (22, 24)}[field]
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        struct.pack_into("<I", data, zf.getinfo(member).header_offset + local_at, value)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        (name_len,) = struct.unpack_from("<H", data, pos + 28)
        if data[pos + 46 : pos + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, pos + central_at, value)
        pos = data.find(b"PK\x01\x02", pos + 1)
    archive.write_bytes(bytes(data))


def _assert_refused_and_uncached(
    folder: Path, archive: Path, variable: str, exc: pytest.ExceptionInfo[DatasetError]
) -> None:
    msg = str(exc.value)
    assert str(archive) in msg and variable in msg and "removed" in msg
    assert not folder.exists() and not archive.exists()
    assert not archive.with_name(archive.name + ".json").exists()  # so the next run downloads afresh
    assert not list(folder.parent.glob(".*"))  # no staging folder with partial files


@pytest.mark.parametrize(
    ("limits", "payload", "variable"),
    [
        ({}, bytes(4 << 20), "TRANSLATE_MAX_COMPRESSION_RATIO"),  # defaults: 4 MiB of zeros deflate to ~4 KB
        ({"TRANSLATE_MAX_EXTRACT_BYTES": str(1 << 20)}, _NOISE, "TRANSLATE_MAX_EXTRACT_BYTES"),
    ],
    ids=["ratio", "bytes"],
)
def test_zip_bomb_refused_and_removed_from_cache(
    server: Server, monkeypatch: pytest.MonkeyPatch, limits: dict[str, str], payload: bytes, variable: str
) -> None:
    for key, value in limits.items():
        monkeypatch.setenv(key, value)
    files = {f"horse2zebra/{k}": v for k, v in CYCLE_FILES.items()} | {"horse2zebra/trainA/payload.png": payload}
    _deflated_zip(server.root / "cyclegan/datasets/horse2zebra.zip", files)
    home = Path(ds.cache_dir()) / "datasets" / "cyclegan"
    with pytest.raises(DatasetError) as exc:
        ds.prepare("horse2zebra", progress=False)
    _assert_refused_and_uncached(home / "horse2zebra", home / "horse2zebra.zip", variable, exc)

    monkeypatch.setenv(variable, str(1 << 40))  # raised, the same archive is downloaded again and extracted
    folder = ds.prepare("horse2zebra", progress=False)
    assert (folder / "trainA" / "payload.png").read_bytes() == payload


@pytest.mark.parametrize("declared", [True, False])
def test_tar_over_the_size_limit_refused_and_removed_from_cache(
    server: Server, monkeypatch: pytest.MonkeyPatch, declared: bool
) -> None:
    members = [_file(f"facades/{k}", v) for k, v in PIX_FILES.items()]
    if declared:  # a header claiming 100 GiB, over the default 64 GiB, with no data behind it
        huge = tarfile.TarInfo("facades/train/huge.jpg")
        huge.size = 100 << 30
        members.append((huge, None))
    else:  # real data over a lowered limit
        monkeypatch.setenv("TRANSLATE_MAX_EXTRACT_BYTES", str(1 << 20))
        members.append(_file("facades/train/big.jpg", _NOISE))
    _make_tar(server.root / "pix2pix/datasets/facades.tar.gz", members)
    home = Path(ds.cache_dir()) / "datasets" / "pix2pix"
    with pytest.raises(DatasetError, match="over the limit of") as exc:
        ds.prepare("facades", "pix2pix", progress=False)
    _assert_refused_and_uncached(home / "facades", home / "facades.tar.gz", "TRANSLATE_MAX_EXTRACT_BYTES", exc)


def test_zip_member_inflating_past_its_declared_size_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    archive = _deflated_zip(tmp_path / "a.zip", {"ds/trainA/ok.png": b"fine", "ds/trainA/big.png": bytes(1 << 20)})
    _patch_zip_field(archive, "ds/trainA/big.png", "file_size", 1000)  # declares 1000 bytes, inflates to 1 MiB
    msg = _assert_refused(archive, tmp_path / "out" / "ds", "ds/trainA/big.png", [], strip_root=True)
    assert "inflates past the 1000 B its header declares" in msg and "Delete the archive" in msg


def test_zip_member_with_a_wrong_crc_is_corrupt(tmp_path: Path) -> None:
    archive = _deflated_zip(tmp_path / "a.zip", {"ds/trainA/ok.png": b"fine", "ds/trainA/bad.png": b"data"})
    _patch_zip_field(archive, "ds/trainA/bad.png", "crc", 12345)
    with pytest.raises(DatasetError, match="corrupt"):
        ds.safe_extract(archive, tmp_path / "out" / "ds")
    assert not (tmp_path / "out" / "ds").exists() and not list((tmp_path / "out").iterdir())


def test_archive_within_lowered_limits_extracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"facades/": b"", "__MACOSX/._facades": b"mac"} | {f"facades/{k}": v for k, v in PIX_FILES.items()}
    archive = _deflated_zip(tmp_path / "a.zip", files)
    monkeypatch.setenv("TRANSLATE_MAX_EXTRACT_BYTES", str(sum(map(len, files.values()))))  # exactly enough
    monkeypatch.setenv("TRANSLATE_MAX_COMPRESSION_RATIO", "2")
    target = tmp_path / "out" / "facades"
    ds.safe_extract(archive, target, strip_root=True)
    assert _all_files(target) == {str(Path(k)) for k in PIX_FILES} | {"train", "val", "test"}
    for rel, data in PIX_FILES.items():
        assert (target / rel).read_bytes() == data
    assert _all_files(target.parent) == {"facades"} | {f"facades/{p}" for p in _all_files(target)}


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_bad_limit_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    archive = _make_zip(tmp_path / "a.zip", {"ds/a.png": b"A"})
    monkeypatch.setenv("TRANSLATE_MAX_COMPRESSION_RATIO", value)
    with pytest.raises(DatasetError, match=f"TRANSLATE_MAX_COMPRESSION_RATIO='{value}' is not a positive"):
        ds.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
