"""Known downloadable datasets: cache location, verified download and safe extraction.

The official CycleGAN / pix2pix servers publish no checksums, so integrity is trust-on-first-use: the
sha256 of an archive is recorded when it first lands in the cache and checked every time it is reused.

This module deliberately avoids importing torch so that `translate datasets` stays instant.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from translate.errors import DatasetError
from translate.files import atomic_write, atomic_writer, remove_stale_temps, sha256_file

if TYPE_CHECKING:
    from rich.progress import Progress

DEFAULT_MIRROR = "http://efrosgans.eecs.berkeley.edu"

_TIMEOUT_S = 30
_CHUNK = 1 << 20
_MIRROR_HINT = "set TRANSLATE_MIRROR to a reachable mirror"


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


def _resolve_inside(start: str, link: str, symlinks: set[str]) -> bool:
    """Lexically resolve ``link`` relative to archive folder ``start``; True if it stays inside the root.

    Lexical resolution is only sound if no intermediate component is itself a symlink, so that is refused too.
    """
    if link.startswith("/") or _DRIVE.match(link):
        return False
    stack = [p for p in PurePosixPath(start).parts if p not in ("", ".")]
    parts = [p for p in link.replace("\\", "/").split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        stack.append(part)
        if i < len(parts) - 1 and "/".join(stack) in symlinks:
            return False
    return True


def _check_tar(tf: tarfile.TarFile, archive: Path) -> None:
    members = tf.getmembers()
    symlinks = {_norm(m.name) for m in members if m.issym()}
    for m in members:
        problem = _name_problem(m.name)
        clean = _norm(m.name)
        if problem is None and any(p in symlinks for p in _parents(clean)):
            problem = "path goes through a symlink"
        elif problem is None and m.issym():
            if not _resolve_inside(str(PurePosixPath(clean).parent), m.linkname, symlinks):
                problem = f"symlink to {m.linkname!r} points outside the dataset"
        elif problem is None and m.islnk():
            if not _resolve_inside("", m.linkname, symlinks):
                problem = f"hardlink to {m.linkname!r} points outside the dataset"
        elif problem is None and not (m.isfile() or m.isdir()):
            problem = "device file or fifo"
        if problem:
            raise DatasetError(f"refusing to extract {archive}: member {m.name!r} is unsafe ({problem}).")


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        problem = _name_problem(info.filename)
        if problem is None and stat.S_ISLNK(info.external_attr >> 16):
            problem = "symlink"
        if problem:
            raise DatasetError(f"refusing to extract {archive}: member {info.filename!r} is unsafe ({problem}).")


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

    Every member is validated before anything is written. Extraction goes to a temporary folder beside
    ``target`` that is renamed into place (replacing any previous ``target``). With ``strip_root`` and a
    single top-level folder in the archive, that folder's content becomes ``target``.
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
                _check_zip(handle, archive)
            else:
                _check_tar(handle, archive)
            # Only now, with every member validated, is anything written.
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extract", dir=target.parent))
            if isinstance(handle, zipfile.ZipFile):
                handle.extractall(staging)
            elif hasattr(tarfile, "data_filter"):  # defence in depth where available (3.12, 3.11.4+)
                handle.extractall(staging, filter="data")
            else:
                handle.extractall(staging)
        root = staging
        if strip_root:
            # macOS-made zips carry a __MACOSX resource-fork folder that is not part of the dataset.
            entries = [p for p in staging.iterdir() if p.name != "__MACOSX"]
            if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
                root = entries[0]
        _move_into_place(root, target)
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
    safe_extract(archive, folder, strip_root=True)
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
