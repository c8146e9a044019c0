"""Known downloadable datasets: cache location, verified download and safe extraction.

The official CycleGAN / pix2pix servers publish no checksums, so integrity is trust-on-first-use: the
sha256 of an archive is recorded when it first lands in the cache and checked every time it is reused.

This module deliberately avoids importing torch so that `translate datasets` stays instant.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from translate.errors import ArchiveLimitError, DatasetError
from translate.files import atomic_write, atomic_writer, remove_stale_temps, sha256_file

if TYPE_CHECKING:
    from rich.progress import Progress

DEFAULT_MIRROR = "http://efrosgans.eecs.berkeley.edu"

_TIMEOUT_S = 30
_CHUNK = 1 << 20
_MIRROR_HINT = "set TRANSLATE_MIRROR to a reachable mirror"

# What one archive may expand to, against zip bombs. The public sets are JPEG and PNG images, which are compressed
# already, so their archives expand barely past 1x; the largest (edges2handbags) is under 10 GB, which leaves 64 GiB
# room for bigger sets on a mirror. Deflate and gzip reach ~1032:1 on zeros, and zips whose entries share one
# compressed block go far beyond: a ratio of 200 is far above any image set and far below a bomb.
DEFAULT_MAX_EXTRACT_BYTES = 64 << 30
DEFAULT_MAX_COMPRESSION_RATIO = 200
_MAX_BYTES_VAR = "TRANSLATE_MAX_EXTRACT_BYTES"
_MAX_RATIO_VAR = "TRANSLATE_MAX_COMPRESSION_RATIO"


@dataclass(frozen=True)
class KnownDataset:
    """A dataset the toolkit knows how to fetch.

    ``family`` is ``"cyclegan"`` (unpaired, ``trainA/trainB/testA/testB``) or ``"pix2pix"`` (paired,
    ``train/val/test``); ``path`` is the URL path after the mirror host.
    """

    name: str
    family: str
    path: str
    description: str


def _cyclegan(name: str, description: str) -> KnownDataset:
    return KnownDataset(name, "cyclegan", f"/cyclegan/datasets/{name}.zip", description)


def _pix2pix(name: str, description: str) -> KnownDataset:
    return KnownDataset(name, "pix2pix", f"/pix2pix/datasets/{name}.tar.gz", description)


# Listed explicitly (not discovered) so the table is stable and reviewable; the key is (family, name)
# because facades, maps and cityscapes exist in both families with different layouts.
KNOWN_DATASETS: dict[str, dict[str, KnownDataset]] = {
    "cyclegan": {
        d.name: d
        for d in (
            _cyclegan("apple2orange", "apples <-> oranges (ImageNet photos)"),
            _cyclegan("summer2winter_yosemite", "Yosemite in summer <-> in winter (Flickr photos)"),
            _cyclegan("horse2zebra", "horses <-> zebras (ImageNet photos)"),
            _cyclegan("monet2photo", "Monet paintings <-> landscape photos"),
            _cyclegan("cezanne2photo", "Cezanne paintings <-> landscape photos"),
            _cyclegan("ukiyoe2photo", "ukiyo-e prints <-> landscape photos"),
            _cyclegan("vangogh2photo", "Van Gogh paintings <-> landscape photos"),
            _cyclegan("maps", "map tiles <-> aerial photos (unpaired)"),
            _cyclegan("cityscapes", "semantic label maps <-> street photos (unpaired)"),
            _cyclegan("facades", "facade label maps <-> building photos (unpaired)"),
            _cyclegan("iphone2dslr_flower", "iPhone flower photos <-> DSLR shallow depth-of-field photos"),
            _cyclegan("ae_photos", "small set of photos for trying photo -> painting models"),
        )
    },
    "pix2pix": {
        d.name: d
        for d in (
            _pix2pix("facades", "facade label maps | building photos (paired)"),
            _pix2pix("cityscapes", "street photos | semantic label maps (paired)"),
            _pix2pix("maps", "aerial photos | map tiles (paired)"),
            _pix2pix("edges2shoes", "edge sketches | shoe photos (paired)"),
            _pix2pix("edges2handbags", "edge sketches | handbag photos (paired)"),
            _pix2pix("night2day", "night | day photos of the same scene (paired)"),
        )
    },
}


def cache_dir() -> Path:
    """Root of the local cache: ``$TRANSLATE_HOME`` or ``~/.cache/translate`` (datasets in ``datasets/``)."""
    return Path(os.environ.get("TRANSLATE_HOME") or "~/.cache/translate").expanduser()


def mirror() -> str:
    """Download base URL: ``$TRANSLATE_MIRROR`` (trailing slash stripped) or :data:`DEFAULT_MIRROR`."""
    return os.environ.get("TRANSLATE_MIRROR", "").strip().rstrip("/") or DEFAULT_MIRROR


def dataset_url(info: KnownDataset) -> str:
    """Full download URL of ``info`` on the current mirror."""
    return mirror() + info.path


def collection_for(data_family: str) -> str:
    """The family of known datasets whose layout a recipe's data family reads: pix2pix's paired sets for paired
    data; CycleGAN's unpaired sets otherwise (generators read their images as folders)."""
    return "pix2pix" if data_family == "paired" else "cyclegan"


def is_known(name: str, family: str = "cyclegan") -> bool:
    """Whether ``name`` is a known dataset of ``family``."""
    return name in KNOWN_DATASETS.get(family, {})


def close_matches(name: str) -> list[str]:
    """Known dataset names (any family) that look like ``name``, best first."""
    names = sorted({n for family in KNOWN_DATASETS.values() for n in family})
    return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def _progress_bar() -> Progress:
    # rich is imported lazily: only downloads that show a bar need it.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # keep stdout clean for scripted use
    )


def download(url: str, dest: Path, *, expected_sha256: str | None = None, progress: bool = True) -> str:
    """Download ``url`` to ``dest`` atomically and return the file's sha256 (hex).

    Data streams through `translate.files.atomic_writer` and reaches ``dest`` only once complete (and matching
    ``expected_sha256`` when given), so ``dest`` never holds a partial file. Temps of earlier, killed downloads of
    the same file are deleted first.
    """
    dest = Path(dest)
    remove_stale_temps(dest.parent, targets={dest.name})
    dest.with_name(f".{dest.name}.part").unlink(missing_ok=True)  # what versions before the shared writer left
    fix = f"Download it yourself and put it at {dest}, or {_MIRROR_HINT}."
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "gan-translate"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:  # before URLError: it is a subclass
        raise DatasetError(f"cannot download {url}: HTTP {e.code} {e.reason}. {fix}") from None
    except urllib.error.URLError as e:
        raise DatasetError(f"cannot download {url}: {e.reason}. {fix}") from None
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets, malformed responses
        raise DatasetError(f"cannot download {url}: {e or type(e).__name__}. {fix}") from None
    # Any exception in here (Ctrl-C included) leaves `dest` as it was and no temp file.
    with response, atomic_writer(dest) as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar() if progress else None
        task = bar.add_task(dest.name, total=total) if bar else None
        received = 0
        try:
            if bar:
                bar.start()
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise DatasetError(f"cannot download {url}: {e or type(e).__name__}. {fix}") from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar:
                    bar.update(task, advance=len(chunk))
        finally:
            if bar:
                bar.stop()
        if total is not None and received != total:
            # A dropped connection can look like a clean EOF; a short file must not be cached.
            raise DatasetError(f"cannot download {url}: got {received} of {total} bytes. {fix}")
        hexdigest = digest.hexdigest()
        if expected_sha256 is not None and hexdigest != expected_sha256.lower():
            raise DatasetError(
                f"{url} has sha256 {hexdigest}, expected {expected_sha256}: the file is corrupt or changed "
                f"upstream. Retry, or {_MIRROR_HINT}."
            )
    return hexdigest


_DRIVE = re.compile(r"^[A-Za-z]:")
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


def _name_problem(name: str) -> str | None:
    """Why an archive member name is unsafe to extract, or None when it is fine."""
    norm = name.replace("\\", "/")  # a backslash is a separator on Windows, so treat it as one everywhere
    if norm.startswith("/"):
        return "absolute path"
    if _DRIVE.match(norm):
        return "drive letter"
    if ".." in norm.split("/"):
        return "'..' component"
    return None


def _norm(name: str) -> str:
    # pathlib drops '.' and empty components, so "./a//b/" and "a/b" compare equal.
    return "/".join(PurePosixPath(name.replace("\\", "/")).parts)


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _resolve_inside(start: str, link: str, symlinks: set[str], floor: int = 0) -> bool:
    """Lexically resolve ``link`` relative to archive folder ``start``; True if it stays inside the root.

    The root is the archive's, or with ``floor`` 1 its top folder (the one strip_root removes, so that what lies
    above it is outside the dataset). Lexical resolution is only sound if no intermediate component is itself a
    symlink, so that is refused too.
    """
    if link.startswith("/") or _DRIVE.match(link):
        return False
    stack = [p for p in PurePosixPath(start).parts if p not in ("", ".")]
    parts = [p for p in link.replace("\\", "/").split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            if len(stack) <= floor:
                return False
            stack.pop()
            continue
        stack.append(part)
        if i < len(parts) - 1 and "/".join(stack) in symlinks:
            return False
    return True


def _check_tar(members: list[tarfile.TarInfo], archive: Path, top: str | None) -> None:
    """Refuse unsafe members; symlinks are checked against the final layout, inside ``top`` when it is stripped."""
    symlinks = {_norm(m.name) for m in members if m.issym()}
    # `facades/train/up -> ../..` stays inside the archive, but leaves the dataset once `facades/` is stripped.
    floor = 1 if top else 0
    for m in members:
        problem = _name_problem(m.name)
        clean = _norm(m.name)
        if problem is None and "\\" in m.name + m.linkname:
            # The checks read a backslash as a separator (as Windows does); tarfile on POSIX keeps it in the name, so
            # `facades/a\b -> ..` would be checked from `facades/a/` but land in `facades/`, pointing above it.
            problem = "backslash in name"
        elif problem is None and any(p in symlinks for p in _parents(clean)):
            problem = "path goes through a symlink"
        elif problem is None and m.issym():
            if not _resolve_inside(str(PurePosixPath(clean).parent), m.linkname, symlinks, floor):
                problem = f"symlink to {m.linkname!r} points outside the dataset"
        elif problem is None and m.islnk():
            if not _resolve_inside("", m.linkname, symlinks):
                problem = f"hardlink to {m.linkname!r} points outside the dataset"
        elif problem is None and not (m.isfile() or m.isdir()):
            problem = "device file or fifo"
        if problem:
            raise DatasetError(f"refusing to extract {archive}: member {m.name!r} is unsafe ({problem}).")


def _check_zip(infos: list[zipfile.ZipInfo], archive: Path) -> None:
    for info in infos:
        problem = _name_problem(info.filename)
        if problem is None and stat.S_ISLNK(info.external_attr >> 16):
            problem = "symlink"
        if problem:
            raise DatasetError(f"refusing to extract {archive}: member {info.filename!r} is unsafe ({problem}).")


def _env_limit(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise DatasetError(f"{variable}={raw!r} is not a positive whole number: set one, or unset it for {default}.")
    return value


def _size(n: float) -> str:
    """``n`` bytes for people: "512 B", "3.0 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _check_expansion(sizes: Iterable[int], archive: Path) -> None:
    """Refuse an archive whose members declare more bytes than the size and compression-ratio limits allow.

    ``sizes`` is consumed lazily and the check stops at the first member over a limit: for a tar that is as soon as
    its header is read, before its data (gigabytes of zeros, perhaps) is decompressed to reach the next header.
    """
    max_bytes = _env_limit(_MAX_BYTES_VAR, DEFAULT_MAX_EXTRACT_BYTES)
    max_ratio = _env_limit(_MAX_RATIO_VAR, DEFAULT_MAX_COMPRESSION_RATIO)
    packed = archive.stat().st_size
    total = 0
    for size in sizes:
        total += size
        if total > max_bytes:
            raise ArchiveLimitError(
                f"refusing to extract {archive}: its files add up to at least {_size(total)}, over the limit of "
                f"{_size(max_bytes)} ({_MAX_BYTES_VAR}={max_bytes}; raise it if the archive is genuine)."
            )
        if total > max_ratio * packed:
            raise ArchiveLimitError(
                f"refusing to extract {archive}: its files add up to at least {_size(total)}, over {max_ratio} times "
                f"its own {_size(packed)}: images never compress that well, zip bombs do "
                f"({_MAX_RATIO_VAR}={max_ratio}; raise it if the archive is genuine)."
            )


def _top_folder(entries: Iterable[tuple[str, bool]]) -> str | None:
    """The one folder that holds every member, which strip_root removes; None when there is no such folder.

    ``entries`` are (normalised name, is a directory). macOS-made zips carry a __MACOSX resource-fork folder beside
    it that is not part of the dataset, so that one does not count.
    """
    tops: set[str] = set()
    is_folder = False
    for name, is_dir in entries:
        top, _, rest = name.partition("/")
        if top and top != "__MACOSX":
            tops.add(top)
            is_folder = is_folder or is_dir or bool(rest)
    return tops.pop() if len(tops) == 1 and is_folder else None


def _extract_zip(zf: zipfile.ZipFile, archive: Path, staging: Path) -> None:
    """Write the checked members of ``zf`` under ``staging``, refusing one that inflates past its declared size.

    The size limits were checked against the declared sizes, and this holds each member to its own. zipfile alone
    would cut such a member off at its declared size and then fail its CRC as if the archive were merely damaged,
    so each is read with a one-byte larger allowance and without zipfile's CRC check (``ZipExtFile`` skips it for an
    info without ``CRC``), and the CRC is checked here.
    """
    for info in zf.infolist():
        name = _norm(info.filename)  # the reading of the name that _check_zip validated and _top_folder used
        if not name:
            continue
        dest = staging.joinpath(*name.split("/"))
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        probe = copy.copy(info)
        probe.file_size = info.file_size + 1
        del probe.CRC
        written, crc = 0, 0
        with zf.open(probe) as src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise ArchiveLimitError(
                        f"refusing to extract {archive}: member {info.filename!r} inflates past the "
                        f"{_size(info.file_size)} its header declares, so the archive is damaged or made to fill "
                        f"the disk."
                    )
                crc = zlib.crc32(chunk, crc)
                out.write(chunk)
        if written != info.file_size or crc != info.CRC:
            raise zipfile.BadZipFile(f"bad data for {info.filename!r}")  # reported as a corrupt archive


def _move_into_place(src: Path, target: Path) -> None:
    # Renames keep a half-written dataset from ever being visible at `target`; an old copy is moved aside
    # first because a directory cannot be renamed over a non-empty one.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists() or target.is_symlink():
        os.rename(target, old)
    os.rename(src, target)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    elif old.exists() or old.is_symlink():
        old.unlink()


def safe_extract(archive: Path, target: Path, *, strip_root: bool = False) -> None:
    """Extract a ``.zip`` / ``.tar`` / ``.tar.gz`` / ``.tgz`` archive to ``target``, refusing unsafe members.

    Every member is validated before anything is written, and so is the total its headers declare: at most
    ``$TRANSLATE_MAX_EXTRACT_BYTES`` (default 64 GiB) and ``$TRANSLATE_MAX_COMPRESSION_RATIO`` (default 200) times
    the archive's size, else `ArchiveLimitError`; a zip member that inflates past its declared size is stopped
    there. Extraction goes to a temporary folder beside ``target`` that is renamed into place (replacing any
    previous ``target``) and removed on any error. With ``strip_root`` and a single top-level folder in the archive,
    that folder's content becomes ``target``, and links must stay inside it.
    """
    archive, target = Path(archive), Path(target)
    name = archive.name.lower()
    corrupt = f"cannot read {archive}: the archive is corrupt or truncated. Delete it and run again."
    if not name.endswith((".zip", ".tar", ".tar.gz", ".tgz")):
        raise DatasetError(f"cannot extract {archive}: unsupported archive type (use .zip, .tar, .tar.gz).")
    staging: Path | None = None
    try:
        with zipfile.ZipFile(archive) if name.endswith(".zip") else tarfile.open(archive, "r:*") as handle:
            if isinstance(handle, zipfile.ZipFile):
                infos = handle.infolist()
                _check_expansion((i.file_size for i in infos), archive)
                _check_zip(infos, archive)
                top = _top_folder((_norm(i.filename), i.is_dir()) for i in infos) if strip_root else None
            else:
                # Iterating reads the headers one at a time (getmembers would read them all first). tarfile writes
                # exactly the size a header declares, so, unlike a zip's, it cannot be exceeded while extracting.
                _check_expansion((m.size for m in handle if m.isfile()), archive)
                members = handle.getmembers()
                top = _top_folder((_norm(m.name), m.isdir()) for m in members) if strip_root else None
                _check_tar(members, archive, top)
            # Only now, with every member validated, is anything written.
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extract", dir=target.parent))
            if isinstance(handle, zipfile.ZipFile):
                _extract_zip(handle, archive, staging)
            elif hasattr(tarfile, "data_filter"):  # defence in depth where available (3.12, 3.11.4+)
                handle.extractall(staging, filter="data")
            else:
                handle.extractall(staging)
        # The top folder the links were checked against, not whatever the extracted tree looks like.
        _move_into_place(staging / top if top else staging, target)
    except _FILTER_ERRORS as e:  # tarfile's own 'data' filter caught something our checks let through
        raise DatasetError(f"refusing to extract {archive}: {e}.") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zipfile.LargeZipFile):
        raise DatasetError(corrupt) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def record_download(url: str, archive: Path, sha256: str) -> None:
    """Write ``NAME.json`` beside a downloaded file: its URL, sha256, size and time (read by verify_download)."""
    record = {
        "url": url,
        "sha256": sha256,
        "bytes": archive.stat().st_size,
        "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write(archive.with_name(archive.name + ".json"), json.dumps(record, indent=2).encode())


def verify_download(archive: Path, url: str) -> str:
    """Check a cached download (dataset archive or model file) against its JSON record and return its sha256.

    A file with no record (placed by hand after a failed download) is recorded instead.
    """
    record_path = archive.with_name(archive.name + ".json")
    actual = sha256_file(archive)
    if not record_path.exists():
        record_download(url, archive, actual)  # trust on first use, as for a fresh download
        return actual
    try:
        expected = json.loads(record_path.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DatasetError(
            f"cache record {record_path} is unreadable. Delete it and {archive}, then run again."
        ) from None
    if actual != expected:
        raise DatasetError(
            f"cached file {archive} is corrupt (sha256 {actual[:12]}... differs from {expected[:12]}... "
            f"recorded at download). Delete it and run again to re-download."
        )
    return actual


def _lookup(name: str, family: str) -> KnownDataset:
    if family not in KNOWN_DATASETS:
        raise DatasetError(f"unknown dataset family {family!r}: use one of {', '.join(KNOWN_DATASETS)}.")
    if is_known(name, family):
        return KNOWN_DATASETS[family][name]
    others = [f for f, names in KNOWN_DATASETS.items() if name in names]
    if others:
        raise DatasetError(f"{name!r} is a {others[0]} dataset, not {family}: use family {others[0]!r}.")
    hint = close_matches(name)
    did_you_mean = f" Did you mean {', '.join(hint)}?" if hint else ""
    raise DatasetError(f"unknown dataset {name!r}.{did_you_mean} Run `translate datasets` for the list.")


def _paths(info: KnownDataset) -> tuple[Path, Path]:
    root = cache_dir() / "datasets" / info.family
    suffix = ".tar.gz" if info.path.endswith(".tar.gz") else PurePosixPath(info.path).suffix
    return root / info.name, root / (info.name + suffix)


def prepare(name: str, family: str = "cyclegan", *, progress: bool = True) -> Path:
    """Return the local folder of a known dataset, downloading and extracting it on first use.

    The folder is ``cache_dir()/datasets/<family>/<name>`` and holds ``trainA/trainB/testA/testB``
    (cyclegan) or ``train/val/test`` (pix2pix). Reuse needs no network; the cached archive, when still
    present, is checked against the sha256 recorded when it was downloaded.
    """
    info = _lookup(name, family)
    folder, archive = _paths(info)
    url = dataset_url(info)
    marker = folder / ".complete"
    if marker.is_file():
        if archive.is_file():
            verify_download(archive, url)
        return folder
    if archive.is_file():
        sha256 = verify_download(archive, url)  # an interrupted extraction: re-extract, but only a trusted archive
    else:
        sha256 = download(url, archive, progress=progress)
        record_download(url, archive, sha256)
    try:
        safe_extract(archive, folder, strip_root=True)
    except ArchiveLimitError as e:
        # A refused download is not kept: the next run (with a raised limit, or a mended mirror) fetches a fresh copy
        # rather than trusting this one's recorded sha256.
        archive.unlink(missing_ok=True)
        archive.with_name(archive.name + ".json").unlink(missing_ok=True)
        raise ArchiveLimitError(
            e.problem, "The cached archive and its sha256 record were removed, so the next run downloads it afresh."
        ) from None
    atomic_write(marker, f"{sha256}\n".encode())
    return folder


def describe() -> list[tuple[str, str, str, bool]]:
    """Rows ``(family, name, description, is_cached)`` for the ``translate datasets`` table."""
    rows = []
    for family, names in KNOWN_DATASETS.items():
        for info in names.values():
            folder, _ = _paths(info)
            rows.append((family, info.name, info.description, (folder / ".complete").is_file()))
    return rows
