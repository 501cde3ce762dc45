"""Texts, names and file contents of a demo site, deterministic per seed.

Files go where Moodle keeps them: ``DATAROOT/filedir/ab/cd/<sha1>``, named by
the SHA-1 of their bytes (``mdl_files.contenthash``), written once (a file
already there has those bytes by its name) and atomically, so an interrupted
run never leaves a file whose name lies about its content.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from coursevault.errors import BadInputError

WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetuer",
    "adipiscing",
    "elit",
    "nulla",
    "non",
    "arcu",
    "lacinia",
    "neque",
    "faucibus",
    "fringilla",
    "vivamus",
    "porttitor",
    "turpis",
    "leo",
    "integer",
    "sapien",
    "nullam",
    "eget",
    "nisl",
    "aliquam",
    "erat",
    "volutpat",
    "cras",
    "elementum",
    "mauris",
    "suscipit",
    "ligula",
    "pharetra",
    "semper",
    "nibh",
    "ante",
    "cursus",
    "purus",
    "sagittis",
    "velit",
    "metus",
    "malesuada",
    "lectus",
    "justo",
    "vulputate",
    "mollis",
    "tempor",
    "magna",
]
FIRST_NAMES = [
    "Ethan",
    "Jayden",
    "Adéla",
    "Olivia",
    "Noah",
    "Emma",
    "Liam",
    "Ava",
    "Lucas",
    "Mia",
    "Mateo",
    "Sofia",
    "Léa",
    "Hugo",
    "Yuki",
    "Aarav",
    "Zoé",
    "Ingrid",
    "Tomás",
    "Amara",
    "Kai",
    "Freya",
    "Omar",
    "Chloé",
    "Jonas",
    "Nia",
    "Felix",
    "Ines",
    "Ravi",
    "Elif",
]
LAST_NAMES = [
    "Williams",
    "Jones",
    "Kučerová",
    "Smith",
    "Brown",
    "García",
    "Müller",
    "Rossi",
    "Dubois",
    "Novak",
    "Tanaka",
    "Silva",
    "Kowalski",
    "Johansson",
    "Papadopoulos",
    "Nguyen",
    "Okafor",
    "Haddad",
    "Fischer",
    "Martin",
    "Lefèvre",
    "Ivanova",
    "O'Brien",
    "Santos",
]
EMPTY_SHA1 = hashlib.sha1(b"").hexdigest()


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


def sentence(rng: random.Random, count: int = 12) -> str:
    text = words(rng, count)
    return text[0].upper() + text[1:] + "."


def paragraphs(rng: random.Random, count: int, html: bool = True) -> str:
    parts = [" ".join(sentence(rng, rng.randint(6, 16)) for _ in range(4)) for _ in range(count)]
    return "".join(f"<p>{p}</p>" for p in parts) if html else "\n".join(parts)


def file_bytes(rng: random.Random, size: int) -> bytes:
    """Random bytes, as tool_generator writes (so nothing compresses them away)."""
    return rng.randbytes(size)


def pathname_hash(contextid: int, component: str, filearea: str, itemid: int, path: str) -> str:
    """``mdl_files.pathnamehash``: SHA-1 of /context/component/area/item/path/name."""
    return hashlib.sha1(f"/{contextid}/{component}/{filearea}/{itemid}{path}".encode()).hexdigest()


@dataclass
class FileStore:
    """A site's ``filedir``; counts what it wrote."""

    dataroot: Path
    files_written: int = 0
    bytes_written: int = 0
    # the contents this run added (not those there before): what discard removes
    made: list[Path] = field(default_factory=list)
    # the folders it made, deepest last: discard removes those left empty
    folders: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._mkdir(self.dataroot / "filedir")

    def _mkdir(self, folder: Path) -> None:
        missing, up = [], folder
        while not up.exists() and up != up.parent:  # up to the first that exists
            missing.append(up)
            up = up.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"dataroot {self.dataroot}: {exc.strerror or exc}") from None
        self.folders.extend(reversed(missing))

    def put(self, content: bytes) -> str:
        """Store content under its SHA-1 and return that contenthash."""
        sha1 = hashlib.sha1(content).hexdigest()
        folder = self.dataroot / "filedir" / sha1[:2] / sha1[2:4]
        target = folder / sha1
        if target.exists():
            return sha1
        self._mkdir(folder)
        try:
            temp = folder / f".{sha1}.{os.getpid()}.tmp"
            temp.write_bytes(content)
            os.replace(temp, target)
        except OSError as exc:
            raise BadInputError(f"dataroot {self.dataroot}: {exc.strerror or exc}") from None
        self.made.append(target)
        self.files_written += 1
        self.bytes_written += len(content)
        return sha1

    def discard(self) -> None:
        """Remove the contents this run added: a build that failed or was
        stopped (Ctrl-C, SIGTERM) left its database empty but thousands of
        contents no row names -- 13 GB for a --courses too big to finish --
        and one refused (a database not empty) a dataroot it had made."""
        for target in self.made:
            with contextlib.suppress(OSError):
                target.unlink()
        self.made.clear()
        for folder in reversed(self.folders):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: what was put there since stays
        self.folders.clear()
