"""A MovieLens release given as the zip archive GroupLens ships, read without unpacking by hand.

Why: GroupLens distributes every release as one zip (``ml-1m.zip``, ``ml-25m.zip``...), and the
first thing a new user tries is ``--dataset ml-1m.zip``. The loaders in
simulator/data/datasets.py read folders, so :func:`unpacked_release` extracts the files a loader
reads (ratings, movies, users, and ML-100K's ``u.*`` tables; never the tag genome, which is
most of ML-25M's archive) of the one release the archive holds into a temporary folder named as
the release's own, and removes it when the loader is done. Anything a loader says about a file
in that folder is reworded to name the member of the archive (``ml-1m.zip:ml-1m/ratings.dat
line 7: ...``), since the temporary path is gone by the time the user reads it.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from recarena.simulator.core.errors import RecarenaError

ZIP_MAGIC = b"PK\x03\x04"
RATINGS_FILES = ("ratings.csv", "ratings.dat", "u.data")
"""A folder holding one of these is a release (the loaders' own test of a folder)."""
READ_FILES = frozenset(
    (*RATINGS_FILES, "movies.csv", "movies.dat", "users.dat", "u.item", "u.user", "u.genre")
)
"""What the loaders read from a release folder; everything else in the archive stays packed."""


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a file that starts as a zip archive does (whatever its suffix)."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as stream:
            return stream.read(4) == ZIP_MAGIC
    except OSError:
        return False


def _release_members(archive: zipfile.ZipFile, path: Path) -> tuple[str, list[zipfile.ZipInfo]]:
    """The release folder inside the archive ('' at its root) and the members to extract."""
    files = [info for info in archive.infolist() if not info.is_dir()]
    folders = sorted(
        {
            str(PurePosixPath(info.filename).parent)
            for info in files
            if PurePosixPath(info.filename).name in RATINGS_FILES
            and not PurePosixPath(info.filename).name.startswith("._")
            and "__MACOSX" not in PurePosixPath(info.filename).parts
        }
    )
    if not folders:
        raise RecarenaError(
            f"{path}: a zip archive with no MovieLens release in it (no "
            f"{', '.join(RATINGS_FILES)} inside); give the dataset's folder or file"
        )
    if len(folders) > 1:
        shown = ", ".join(f or "(the archive's root)" for f in folders[:4])
        raise RecarenaError(
            f"{path}: the zip archive holds more than one release ({shown}); unpack it and "
            "give one release's folder"
        )
    folder = folders[0]
    wanted = [
        info
        for info in files
        if str(PurePosixPath(info.filename).parent) == folder
        and PurePosixPath(info.filename).name in READ_FILES
    ]
    return ("" if folder == "." else folder), wanted


def _check_room(wanted: list[zipfile.ZipInfo], scratch: Path, path: Path) -> None:
    """Refuse before writing when the unpacked files would not fit the scratch disk."""
    needed = sum(info.file_size for info in wanted)
    free = shutil.disk_usage(scratch).free
    if needed > free:
        raise RecarenaError(
            f"{path}: unpacking its {needed / 1e9:.1f} GB of ratings and movies needs more room "
            f"than {scratch} has ({free / 1e9:.1f} GB free); unpack it elsewhere and give the "
            "folder"
        )


@dataclass(frozen=True)
class Unpacked:
    """A release unpacked from ``archive`` into ``folder`` (temporary)."""

    archive: Path
    folder: Path
    inside: str  # the release folder's path inside the archive, '' at its root

    def named(self, text: str) -> str:
        """``text`` with the temporary folder's paths written as the archive's members."""
        member = f"{self.archive}:{self.inside + '/' if self.inside else ''}"
        return text.replace(f"{self.folder}/", member).replace(str(self.folder), str(self.archive))


@contextmanager
def unpacked_release(path: Path) -> Iterator[Unpacked]:
    """The release inside the zip archive ``path``, as a temporary folder for the duration of
    the ``with`` block; a loader's error inside the block names the archive's member."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise RecarenaError(f"{path}: not a readable zip archive ({error})") from None
    with archive, tempfile.TemporaryDirectory(prefix="recarena-release-") as scratch:
        folder, wanted = _release_members(archive, path)
        _check_room(wanted, Path(scratch), path)
        name = PurePosixPath(folder).name if folder else path.stem
        if name in ("", ".", ".."):  # a member under '../': the folder takes the archive's name
            name = path.stem
        target = Path(scratch) / name
        target.mkdir()
        for info in wanted:
            member = PurePosixPath(info.filename).name
            if info.flag_bits & 0x1:
                raise RecarenaError(
                    f"{path}:{info.filename}: encrypted (the archive has a password); unpack "
                    "it with the password and give the folder"
                )
            try:
                with archive.open(info) as source, (target / member).open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,  # what zipfile raises for a member it cannot decrypt or read
            ) as error:
                raise RecarenaError(
                    f"{path}:{info.filename}: cannot be unpacked ({error})"
                ) from None
        release = Unpacked(path, target, folder)
        try:
            yield release
        except RecarenaError as error:
            raise RecarenaError(release.named(str(error))) from None
