"""Generate big, realistic Moodle 4.1 course backups (.mbz) and their nightly change.

Why this exists: coursevault has to be measured on what a Moodle site's automated
backup really produces night after night -- hundreds of megabytes of XML dominated
by forum posts, a few hundred users, gradebook and log records, a handful of binary
files -- where only some kilobytes change from one night to the next, scattered
inside the big files. The corpus archives in shared/corpus are small test fixtures,
so this module synthesises such courses deterministically from a seed, or replays
the same kind of nightly change on a real corpus archive (``--from``).

What is guaranteed:

* Archives follow moodle2-format.md section 1.2 exactly: hand-written ustar headers,
  ``.ARCHIVE_INDEX`` first, sorted top-level names, ``moodle_backup.log`` last, two
  zero blocks, one gzip member (level 6, MTIME 0, OS byte 3).
* Every XML file follows the writer rules of section 2 byte for byte.
* Night N depends only on (seed, xml_mb, N) -- or (seed, N, corpus archive) -- so
  any night can be regenerated alone, byte-identical. Night 1 is the base.
* Streaming: XML is written to a staging directory piece by piece and packed from
  disk; memory stays bounded (measured ~37 MB peak RSS at 100 and 1000 MB) whatever
  ``xml_mb`` is. Disk needs about twice the XML size while a night is built.
* ``--from``: the corpus archive (tgz or zip) is extracted and repacked with the same
  tar rules in its original member order (re-packed fixtures keep their order). Files
  the night does not touch keep their exact bytes; edited XML files (forum.xml, its
  inforef.xml, moodle_backup.xml, a section.xml) are re-serialised canonically and
  checked by re-parsing -- so a hand-edited fixture loses e.g. its final newline once
  edited. A course without a forum gets one on night 2 (a teacher adding a forum).

CLI::

    python benchmarks/gen_course.py base   --out DIR [--xml-mb N] [--seed S] [--from X.mbz]
    python benchmarks/gen_course.py nights --out DIR --nights N [--xml-mb N] [--seed S]
                                           [--from X.mbz]

Both write ``DIR/night-01.mbz`` (``base``) or ``night-01.mbz`` .. ``night-NN.mbz``
and print one JSON line of statistics per archive.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import hashlib
import json
import os
import random
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lxml import etree

DIR_MTIME = 1356998400
NULL = "$@NULL@$"
XML_PROLOGUE = '<?xml version="1.0" encoding="UTF-8"?>\n'
INDEX_NAME = ".ARCHIVE_INDEX"
LOG_NAME = "moodle_backup.log"
MOODLE_VERSION = "2022112810"
MOODLE_RELEASE = "4.1.10 (Build: 20240422)"
BACKUP_VERSION = "2022112800"
BACKUP_RELEASE = "4.1"
BACKUP_BYTES_PER_SECOND = 25_000_000  # how fast the simulated backup writes files

Value = str | int | None
GradeRow = tuple[int, int, float | None, int | None, int | None]  # id, user, grade, by, time
Attrs = Sequence[tuple[str, Value]]
PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------
# Determinism helpers


def sub_seed(*parts: object) -> int:
    """A stable 64-bit seed from any parts (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def sub_rng(*parts: object) -> random.Random:
    return random.Random(sub_seed(*parts))


# --------------------------------------------------------------------------
# XML writer (moodle2-format.md section 2)


def esc_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def esc_attr(text: str) -> str:
    return esc_text(text).replace('"', "&quot;")


def fmt_value(value: Value) -> str:
    if value is None:
        return NULL
    if isinstance(value, int):
        return str(value)
    return esc_text(value)


def fmt_attrs(attrs: Attrs) -> str:
    return "".join(f' {k}="{"" if v is None else esc_attr(str(v))}"' for k, v in attrs)


class XmlFile:
    """Streams one Moodle XML document to disk; never holds more than ~256 KB.

    Containers are opened and closed explicitly; leaves are written whole. The
    layout rules (indentation, empty containers, no newline after the root end
    tag) follow from the fact that only leaves carry text.
    """

    FLUSH_AT = 1 << 18

    def __init__(self, path: Path, root: str, attrs: Attrs = ()) -> None:
        self._fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self._parts: list[str] = [XML_PROLOGUE, f"<{root}{fmt_attrs(attrs)}>"]
        self._pending = 0
        self._stack = [root]
        self.size = 0

    @property
    def depth(self) -> int:
        return len(self._stack)

    def raw(self, text: str) -> None:
        """Append pre-rendered, already escaped XML (hot paths render records whole)."""
        self._parts.append(text)
        self._pending += len(text)
        if self._pending > self.FLUSH_AT:
            self._flush()

    def open(self, name: str, attrs: Attrs = ()) -> None:
        self.raw(f"\n{'  ' * len(self._stack)}<{name}{fmt_attrs(attrs)}>")
        self._stack.append(name)

    def close(self) -> None:
        name = self._stack.pop()
        self.raw(f"\n{'  ' * len(self._stack)}</{name}>")

    def empty(self, name: str, attrs: Attrs = ()) -> None:
        self.open(name, attrs)
        self.close()

    def leaf(self, name: str, value: Value) -> None:
        self.raw(f"\n{'  ' * len(self._stack)}<{name}>{fmt_value(value)}</{name}>")

    def leaves(self, fields: Iterable[tuple[str, Value]]) -> None:
        pad = "\n" + "  " * len(self._stack)
        self.raw("".join(f"{pad}<{k}>{fmt_value(v)}</{k}>" for k, v in fields))

    def record(
        self,
        name: str,
        attrs: Attrs,
        fields: Iterable[tuple[str, Value]],
        containers: Sequence[str] = (),
    ) -> None:
        """One element with leaves and (empty) child containers."""
        self.open(name, attrs)
        self.leaves(fields)
        for child in containers:
            self.empty(child)
        self.close()

    def finish(self) -> int:
        while self._stack:
            self.close()
        self._flush()
        self._fh.close()
        return self.size

    def _flush(self) -> None:
        data = "".join(self._parts).encode("utf-8")
        self._fh.write(data)
        self.size += len(data)
        self._parts.clear()
        self._pending = 0


def canonical_xml(root: etree._Element) -> bytes:
    """Serialise a parsed tree by the section 2 rules.

    An element without child elements is a leaf whose text is written as is (so an
    empty container that was parsed with its whitespace text comes back identical);
    otherwise it is a container and its own text and all tails are layout. Comments
    and processing instructions are dropped (Moodle never writes them).
    """
    out: list[str] = [XML_PROLOGUE]

    def walk(elem: etree._Element, depth: int) -> None:
        tag = str(elem.tag)
        attrs = "".join(f' {k}="{esc_attr(str(v))}"' for k, v in elem.attrib.items())
        pad = "\n" + "  " * depth if depth else ""
        children = [c for c in elem if isinstance(c.tag, str)]
        if not children:
            out.append(f"{pad}<{tag}{attrs}>{esc_text(elem.text or '')}</{tag}>")
            return
        out.append(f"{pad}<{tag}{attrs}>")
        for child in children:
            walk(child, depth + 1)
        out.append(f"\n{'  ' * depth}</{tag}>")

    walk(root, 0)
    return "".join(out).encode("utf-8")


def small_xml(path: Path, root: str, containers: Sequence[str] = ()) -> int:
    xf = XmlFile(path, root)
    for name in containers:
        xf.empty(name)
    return xf.finish()


# --------------------------------------------------------------------------
# Archive writer (moodle2-format.md section 1.2)


@dataclass(frozen=True)
class Member:
    """One archive entry: ``name`` ends in "/" for directories (path None)."""

    name: str
    path: Path | None
    size: int
    mtime: int | None  # None is written as "?" in the index and 1356998400 in tar


def ustar_header(name: str, size: int, mtime: int, is_dir: bool) -> bytes:
    raw = name.encode("utf-8")
    prefix = b""
    while len(raw) > 100:
        slash = raw.find(b"/")
        if slash < 0:
            raise ValueError(f"name cannot fit the ustar limits: {name}")
        prefix = prefix + b"/" + raw[:slash] if prefix else raw[:slash]
        raw = raw[slash + 1 :]
        if len(prefix) > 155:
            raise ValueError(f"path too long for ustar: {name}")
    if size >= 8**11:
        raise ValueError(f"file too large for ustar: {name}")
    header = bytearray(512)
    header[0 : len(raw)] = raw
    header[100:108] = b"0000755\0" if is_dir else b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % mtime
    header[148:156] = b" " * 8
    header[156] = ord("5" if is_dir else "0")
    header[257:265] = b"ustar\x0000"
    header[345 : 345 + len(prefix)] = prefix
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


class GzipSink:
    """One gzip member as PHP gzopen(.., 'wb') writes it: level 6, FLG 0, MTIME 0, OS 3."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._z = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
        self._crc = 0
        self._size = 0
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")

    def write(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._fh.write(self._z.compress(data))

    def close(self) -> None:
        self._fh.write(self._z.flush())
        self._fh.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))


def archive_index(members: Sequence[Member]) -> bytes:
    lines = [f"Moodle archive file index. Count: {len(members)}\n"]
    for m in members:
        kind = "d" if m.path is None else "f"
        lines.append(f"{m.name}\t{kind}\t{m.size}\t{'?' if m.mtime is None else m.mtime}\n")
    return "".join(lines).encode("utf-8")


def pack_mbz(members: Sequence[Member], out_path: Path) -> int:
    """Write members (in the given order, index prepended) as a Moodle .mbz.

    Written to a temporary name and renamed, so a reader never sees half an
    archive. Returns the total uncompressed bytes of all member contents.
    """
    tmp = out_path.with_name(out_path.name + ".part")
    total = 0
    with open(tmp, "wb") as fh:
        gz = GzipSink(fh)
        index = archive_index(members)
        for name, path, data, size, mtime in [(INDEX_NAME, None, index, len(index), None)] + [
            (m.name, m.path, None, m.size, m.mtime) for m in members
        ]:
            is_dir = path is None and data is None
            gz.write(ustar_header(name, size, DIR_MTIME if mtime is None else mtime, is_dir))
            if data is not None:
                gz.write(data)
            elif path is not None:
                written = 0
                with open(path, "rb") as src:
                    while chunk := src.read(1 << 20):
                        gz.write(chunk)
                        written += len(chunk)
                if written != size:
                    raise RuntimeError(f"{name} changed while packing")
            total += size
            if size % 512:
                gz.write(b"\0" * (512 - size % 512))
        gz.write(b"\0" * 1024)
        gz.close()
    os.replace(tmp, out_path)
    return total


def _readdir_order(names: Iterable[str]) -> list[str]:
    """A stable stand-in for raw readdir order: unsorted-looking, same every night."""
    return sorted(names, key=lambda n: hashlib.md5(n.encode()).digest())


def staged_members(stage: Path) -> list[Member]:
    """Entry order of tgz_packer: sorted top level, readdir order below, log last."""
    out: list[Member] = []

    def walk(rel: str, path: Path) -> None:
        if path.is_dir():
            out.append(Member(rel + "/", None, 0, None))
            for child in _readdir_order(os.listdir(path)):
                walk(f"{rel}/{child}", path / child)
        else:
            st = path.stat()
            out.append(Member(rel, path, st.st_size, int(st.st_mtime)))

    top = [n for n in os.listdir(stage) if n not in (LOG_NAME, INDEX_NAME)]
    for name in sorted(top, key=lambda n: n.encode()):
        walk(name, stage / name)
    log = stage / LOG_NAME
    if log.exists():
        st = log.stat()
        out.append(Member(LOG_NAME, log, st.st_size, int(st.st_mtime)))
    return out


# --------------------------------------------------------------------------
# Text


_WORD_TEXT = """
the of and to in is that for it as with was on be by this are from or at an have not but
which they can their one all we there been more if will would when what about so out up
into some could them than other then its only these two may time first also how like our
way over even most after such much well where through because each just those should
between very being both under while within without however during against among another
again still really quite perhaps maybe actually probably especially definitely
assignment lecture question answer week exam chapter reading problem solution example
data model theory method result figure table section page source argument evidence
hypothesis experiment sample analysis course module group project deadline feedback
draft report essay topic discussion forum reply thread point idea concept definition
formula equation proof lemma graph function variable value error test quiz grade mark
rubric criteria citation reference article journal paper book library slide video
tutorial lab session office hours semester term partner team presentation poster
statistics regression variance mean median distribution probability matrix vector
algorithm complexity recursion loop array pointer memory database query index schema
network protocol latency bandwidth server client thermodynamics entropy energy force
velocity acceleration momentum circuit voltage current resistance cell protein enzyme
gene mutation species ecosystem climate policy economy market demand supply inflation
history revolution empire treaty century source primary secondary interpretation
literature novel poem narrative character theme metaphor language grammar vocabulary
understand explain clarify compare contrast describe discuss evaluate calculate derive
prove show check submit upload download review revise agree disagree suggest notice
wonder think believe assume expect remember forget confuse mention include compute
interesting confusing difficult easy helpful useful important relevant correct wrong
similar different clear unclear detailed brief previous next final last whole partial
"""
_FIRST_NAME_TEXT = """
Amelia Oliver Isla Noah Ava Leo Mia Arthur Sofia Lucas Chloe Ethan Grace Mateo Zoë José
Łukasz Søren François Ngozi Aiko Hiroshi Priya Arjun Fatima Omar Yusuf Elif Mehmet Ana
João Lucía Diego Chen Wei Mei Ling Olga Dmitri Anja Björn Ingrid Siobhán Aoife Kwame
Amara Thandiwe Kofi Nia Liam Emma Hannah Jonas Lea Paul Marie Tomás Renée Zaid Layla
"""
_LAST_NAME_TEXT = """
Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Wright García Martínez
López González Müller Schmidt Schneider Fischer Weber Novak Kowalski Nowak Dubois
Lefèvre Moreau Rossi Russo Bianchi Ricci Kim Lee Park Nguyen Tran Wang Zhang Liu Sato
Suzuki Takahashi Okafor Mensah Adeyemi Haddad Khan Ahmed Singh Kumar O'Brien Murphy
Kelly Byrne Andersson Johansson Nielsen Hansen Silva Santos
"""
_WORDS = _WORD_TEXT.split()
_NAMES_FIRST = _FIRST_NAME_TEXT.split()
_NAMES_LAST = _LAST_NAME_TEXT.split()
_FLOURISHES = (
    "Q&amp;A",
    "R&amp;D",
    "if x &lt; 10",
    "“see the slides”",
    "naïve approach",
    "café discussion",
    "— as discussed —",
    "pages 12–15",
    "±5%",
    "e.g.",
    "i.e.",
    "(optional)",
)


class TextPool:
    """Sentences drawn once per seed; messages are cheap combinations of them."""

    def __init__(self, seed: int, size: int = 6000) -> None:
        rng = sub_rng(seed, "sentences")
        self.sentences: list[str] = []
        for _ in range(size):
            words = rng.choices(_WORDS, k=rng.randint(6, 24))
            if rng.random() < 0.25:
                words.insert(rng.randrange(len(words)), rng.choice(_NAMES_FIRST))
            if rng.random() < 0.12:
                words.insert(rng.randrange(len(words)), rng.choice(_FLOURISHES))
            if len(words) > 8 and rng.random() < 0.4:
                words[rng.randrange(3, len(words) - 2)] += ","
            words[0] = words[0][:1].upper() + words[0][1:]
            self.sentences.append(" ".join(words) + rng.choice("....?!"))

    def message(self, rng: random.Random, lo: int = 500, hi: int = 2000) -> str:
        """An HTML forum message (as stored in the database) of lo..hi characters."""
        target = rng.randint(lo, hi)
        paras: list[str] = []
        length = 0
        sentences = self.sentences
        atto = rng.random() < 0.6
        while length < target:
            body = " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 5)))
            roll = rng.random()
            if roll < 0.05:
                body = f"<strong>{body}</strong>"
            elif roll < 0.08:
                body = f'{body} <a href="$@FORUMDISCUSSIONVIEW*{rng.randint(1, 9999)}@$">link</a>'
            elif roll < 0.10:
                body = f'<img src="@@PLUGINFILE@@/image{rng.randint(1, 9)}.png" alt="" class="img-fluid">{body}'
            if roll > 0.97:
                para = f"<blockquote>{body}</blockquote>"
            elif atto:
                para = f'<p dir="ltr" style="text-align: left;">{body}<br></p>'
            else:
                para = f"<p>{body}</p>"
            paras.append(para)
            length += len(para)
        return "".join(paras)

    def title(self, rng: random.Random) -> str:
        words = rng.choice(self.sentences).rstrip(".?!").split()[: rng.randint(3, 8)]
        lead = rng.choice(("", "", "Question about ", "Help with ", "Re-reading ", "Week "))
        text = " ".join(words)
        if lead:
            text = lead + text[:1].lower() + text[1:]
        return text


# --------------------------------------------------------------------------
# Course plan: every count and id of the base course, cheap to compute


@dataclass(frozen=True)
class FileSpec:
    file_id: int  # the file record; file_id + 1 is its "." directory record
    contextid: int
    component: str
    filearea: str
    itemid: int
    filename: str
    mimetype: str
    userid: int
    filesize: int
    time: int
    blob_seed: int


@dataclass
class ForumPlan:
    index: int
    kind: str
    name: str
    cmid: int
    instance: int
    contextid: int
    sectionid: int
    section_number: int
    assessed: bool
    share: float
    content_seed: int
    disc_ids: array[int]
    first_posts: array[int]
    counts: array[int]
    timestarts: array[int]
    grade_item: int = 0
    log_first: int = 0
    log_count: int = 0

    def recent(self) -> range:
        n = len(self.disc_ids)
        return range(max(0, n - max(3, min(30, n // 10))), n)


@dataclass
class QuizPlan:
    cmid: int
    instance: int
    contextid: int
    sectionid: int
    section_number: int
    n_questions: int
    question_ids: list[int]
    answer_base: int
    base_attempts: int
    attempt_id0: int
    usage_id0: int
    qa_id0: int
    step_id0: int
    grade_item: int
    grade_id0: int
    log_first: int = 0
    log_count: int = 0


@dataclass
class CoursePlan:
    seed: int
    xml_mb: float
    courseid: int
    contextid: int
    shortname: str
    fullname: str
    site_hash: str
    wwwroot: str
    start: int
    base_backup: int
    users: list[int]
    teachers: list[int]
    students: list[int]
    sections: list[tuple[int, int]]  # (section id, number)
    forums: list[ForumPlan]
    quiz: QuizPlan
    files: list[FileSpec]
    attachments: dict[int, FileSpec]
    next_post_id: int
    next_disc_id: int
    next_file_id: int
    next_log_id: int
    course_log_first: int
    course_log_count: int
    gradebook_items: list[tuple[int, str]]
    grade_grade_id0: int
    category_id: int
    pool: TextPool = field(repr=False)

    def backup_time(self, night: int) -> int:
        return (
            self.base_backup
            + (night - 1) * 86400
            + sub_rng(self.seed, "jitter", night).randint(0, 900)
        )

    def user_ctx(self, userid: int) -> int:
        return self.contextid + 5000 + userid


# Approximate XML bytes per record, measured on the generator's own output.
_POST_BYTES = 2350
_ATTEMPT_BYTES_PER_Q = 2500
_LOG_BYTES = 710
_USER_BYTES = 1950
_GRADE_BYTES = 940


def make_plan(xml_mb: float, seed: int) -> CoursePlan:
    """Derive every count, id and time of the base course from (xml_mb, seed)."""
    rng = sub_rng(seed, "plan")
    target = max(0.2, float(xml_mb)) * 1_000_000
    courseid = rng.randint(20, 900)
    contextid = rng.randint(1000, 90000)
    subject = rng.choice(("BIO", "CHEM", "CS", "ECON", "HIST", "MATH", "PHYS", "PSYC"))
    number = rng.randint(101, 499)
    shortname = f"{subject}{number}-{rng.choice(('A', 'B', 'C'))}"
    fullname = f"{subject} {number}: " + rng.choice(
        (
            "Foundations and Practice",
            "Introduction to the Discipline",
            "Methods & Analysis",
            "Advanced Topics",
        )
    )
    start = 1693526400 + rng.randint(0, 14) * 86400  # September 2023
    base_backup = 1709251200 + 7200 + rng.randint(0, 3599)  # 2024-03-01 ~02:00 UTC

    n_users = min(800, int(100 + 60 * (target / 1e6) ** 0.5))
    first_user = rng.randint(100, 3000)
    users = [2, *list(range(first_user, first_user + n_users - 1))]
    teachers = users[:4]
    students = users[4:]

    sections = [(rng.randint(100, 5000) * 10 + i, i) for i in range(6)]
    section_ids = [s for s, _ in sections]

    # Budget: forums take what the fixed parts leave.
    n_grade_items = 4 if target >= 3e6 else 1
    fixed = n_users * (_USER_BYTES + 600) + n_users * n_grade_items * _GRADE_BYTES + 60_000
    quiz_budget = 0.07 * target
    log_budget = 0.11 * target
    forum_budget = max(0.3 * target, target - fixed - quiz_budget - log_budget)
    forum_budget -= n_users * 3 * _GRADE_BYTES  # forum and quiz grade_grades

    next_id = {"cm": rng.randint(50, 900), "inst": rng.randint(5, 300), "ctx": contextid + 1}
    next_post = rng.randint(1000, 50000)
    next_disc = rng.randint(100, 9000)
    forums: list[ForumPlan] = []
    forum_specs = [
        ("news", "Announcements", 0.01, 0, False),
        ("general", "Course discussion", 0.61, 0, True),
        ("general", "Weekly reading questions", 0.20, 1, True),
        ("general", "Lab and project help", 0.12, 3, False),
        ("general", "Study groups and social", 0.06, 4, False),
    ]
    span = base_backup - 4 * 86400 - start
    for index, (kind, name, share, secnum, assessed) in enumerate(forum_specs):
        srng = sub_rng(seed, "forum-structure", index)
        posts_target = max(3, int(forum_budget * share / _POST_BYTES))
        disc_ids, first_posts, counts, timestarts = (array("q") for _ in range(4))
        total = 0
        while total < posts_target:
            count = 1 if kind == "news" else min(90, 1 + int(srng.expovariate(1 / 11)))
            disc_ids.append(next_disc)
            first_posts.append(next_post)
            counts.append(count)
            next_disc += 1
            next_post += count
            total += count
        n = len(disc_ids)
        for i in range(n):
            timestarts.append(start + span * i // n + srng.randint(0, max(1, span // n // 2)))
        forums.append(
            ForumPlan(
                index=index,
                kind=kind,
                name=name,
                cmid=next_id["cm"],
                instance=next_id["inst"],
                contextid=next_id["ctx"],
                sectionid=section_ids[secnum],
                section_number=secnum,
                assessed=assessed,
                share=share,
                content_seed=sub_seed(seed, "forum-content", index),
                disc_ids=disc_ids,
                first_posts=first_posts,
                counts=counts,
                timestarts=timestarts,
            )
        )
        next_id["cm"] += rng.randint(1, 3)
        next_id["inst"] += 1
        next_id["ctx"] += rng.randint(1, 3)

    n_q = 10
    per_attempt = n_q * _ATTEMPT_BYTES_PER_Q
    quiz = QuizPlan(
        cmid=next_id["cm"],
        instance=rng.randint(10, 400),
        contextid=next_id["ctx"],
        sectionid=section_ids[2],
        section_number=2,
        n_questions=n_q,
        question_ids=[rng.randint(2000, 9000) * 10 + i for i in range(n_q)],
        answer_base=rng.randint(10000, 90000) * 10,
        base_attempts=max(3, int(quiz_budget / per_attempt)),
        attempt_id0=rng.randint(100, 20000),
        usage_id0=rng.randint(100, 20000),
        qa_id0=rng.randint(10000, 500000),
        step_id0=rng.randint(10000, 900000),
        grade_item=0,
        grade_id0=rng.randint(100, 9000),
    )

    # Grade items: gradebook.xml holds course-level ones, activities their own.
    item = rng.randint(100, 2000)
    gradebook_items = [(item, "course")]
    for label in ("Participation", "Midterm exam", "Final project")[: n_grade_items - 1]:
        item += 1
        gradebook_items.append((item, label))
    for forum in forums:
        if forum.assessed:
            item += 1
            forum.grade_item = item
    item += 1
    quiz.grade_item = item

    # Logs: ids global, allocated course first, then forums, then the quiz.
    next_log = rng.randint(100000, 900000)
    course_log_first = next_log
    course_log_count = max(10, int(log_budget * 0.6 / _LOG_BYTES))
    next_log += course_log_count
    for forum in forums:
        forum.log_first = next_log
        forum.log_count = max(5, int(log_budget * 0.35 * forum.share / _LOG_BYTES))
        next_log += forum.log_count
    quiz.log_first = next_log
    quiz.log_count = max(5, int(log_budget * 0.05 / _LOG_BYTES))
    next_log += quiz.log_count

    # Files: a course image and attachments on posts of the general forums.
    frng = sub_rng(seed, "files")
    next_file = rng.randint(1000, 90000)
    files: list[FileSpec] = []
    attachments: dict[int, FileSpec] = {}
    n_files = 6 + min(34, int(target / 1e6) // 25)
    for k in range(n_files):
        kind_name, mime = frng.choice(
            (
                ("png", "image/png"),
                ("jpg", "image/jpeg"),
                ("pdf", "application/pdf"),
            )
        )
        size = frng.randint(60_000, 420_000)
        if k == 0:
            spec = FileSpec(
                next_file, contextid, "course", "overviewfiles", 0, f"course-banner.{kind_name}", mime,
                teachers[0], size, start - 86400, sub_seed(seed, "blob", k),
            )  # fmt: skip
        else:
            forum = forums[1 + (k % (len(forums) - 1))]
            d = frng.randrange(len(forum.disc_ids))
            post = forum.first_posts[d] + frng.randrange(forum.counts[d])
            if post in attachments:
                continue
            spec = FileSpec(
                next_file, forum.contextid, "mod_forum", "attachment", post,
                f"{frng.choice(('notes', 'diagram', 'scan', 'worksheet', 'plot'))}-{k:02d}.{kind_name}",
                mime, frng.choice(users), size, forum.timestarts[d], sub_seed(seed, "blob", k),
            )  # fmt: skip
            attachments[post] = spec
        files.append(spec)
        next_file += 2

    return CoursePlan(
        seed=seed,
        xml_mb=xml_mb,
        courseid=courseid,
        contextid=contextid,
        shortname=shortname,
        fullname=fullname,
        site_hash=hashlib.md5(f"site-{seed}".encode()).hexdigest(),
        wwwroot=f"https://moodle.uni-{seed % 97}.example.edu",
        start=start,
        base_backup=base_backup,
        users=users,
        teachers=teachers,
        students=students,
        sections=sections,
        forums=forums,
        quiz=quiz,
        files=files,
        attachments=attachments,
        next_post_id=next_post,
        next_disc_id=next_disc,
        next_file_id=next_file,
        next_log_id=next_log,
        course_log_first=course_log_first,
        course_log_count=course_log_count,
        gradebook_items=gradebook_items,
        grade_grade_id0=rng.randint(10000, 900000),
        category_id=rng.randint(10, 900),
        pool=TextPool(seed),
    )


# --------------------------------------------------------------------------
# Nightly change: small event tables for nights 2..N, regenerated from the seed


@dataclass(frozen=True)
class NewPost:
    post_id: int
    discussion_id: int
    forum: int
    parent: int
    userid: int
    created: int
    night: int
    file: FileSpec | None


@dataclass(frozen=True)
class NewDiscussion:
    discussion_id: int
    forum: int
    first_post: int
    night: int


@dataclass(frozen=True)
class NewAttempt:
    index: int  # global attempt index (base attempts are 0..base_attempts-1)
    userid: int
    attemptnum: int
    timestart: int
    night: int


@dataclass(frozen=True)
class LogBatch:
    first_id: int
    count: int
    night: int


@dataclass
class Changes:
    """Everything nights 2..night changed, as overlays on the base course."""

    night: int
    posts: dict[int, list[NewPost]] = field(default_factory=dict)  # by discussion
    discussions: dict[int, list[NewDiscussion]] = field(default_factory=dict)  # by forum
    edits: dict[int, tuple[int, int]] = field(default_factory=dict)  # post -> (night, modified)
    attempts: list[NewAttempt] = field(default_factory=list)
    quiz_grades: dict[int, tuple[int, int]] = field(default_factory=dict)  # user -> (night, t)
    new_grade_users: list[int] = field(default_factory=list)  # users graded after the base
    files: list[FileSpec] = field(default_factory=list)
    logs: dict[str, list[LogBatch]] = field(default_factory=dict)
    active: dict[int, int] = field(default_factory=dict)  # user -> last access
    tonight: dict[str, int] = field(default_factory=dict)  # counts of the last night


def base_attempt_user(plan: CoursePlan, index: int) -> tuple[int, int]:
    n = len(plan.students)
    return plan.students[index % n], index // n + 1


def collect_changes(plan: CoursePlan, night: int) -> Changes:
    ch = Changes(night=night)
    next_post = plan.next_post_id
    next_disc = plan.next_disc_id
    next_file = plan.next_file_id
    next_log = plan.next_log_id
    next_attempt = plan.quiz.base_attempts
    n_students = len(plan.students)
    attempts_of: dict[int, int] = {}
    graded = {plan.students[i] for i in range(min(n_students, plan.quiz.base_attempts))}
    new_by_forum: dict[int, list[int]] = {}  # forum -> new discussion ids
    created_of: dict[int, int] = {}  # new post -> created
    general = [f for f in plan.forums if f.kind == "general"]
    weights = [f.share for f in general]
    posters = plan.students + plan.teachers

    def discussion_posts(forum: ForumPlan, disc: int) -> list[int]:
        out: list[int] = []
        if disc < plan.next_disc_id:
            pos = disc - forum.disc_ids[0]
            out.extend(range(forum.first_posts[pos], forum.first_posts[pos] + forum.counts[pos]))
        out.extend(p.post_id for p in ch.posts.get(disc, []))
        return out

    for n in range(2, night + 1):
        rng = sub_rng(plan.seed, "night", n)
        t_now = plan.backup_time(n)
        t_prev = plan.backup_time(n - 1)
        n_posts = rng.randint(20, 40)
        times = sorted(rng.randint(t_prev + 120, t_now - 120) for _ in range(n_posts))
        counts = {
            "posts": n_posts,
            "discussions": 0,
            "edits": 0,
            "attempts": 0,
            "files": 0,
            "logs": 0,
        }
        per_forum: dict[int, int] = {}
        new_file_due = n >= 6 and n % 5 == 1
        first_reply = True
        for i in range(n_posts):
            forum = rng.choices(general, weights)[0]
            user = rng.choice(posters)
            if i == 0 and rng.random() < 0.35:
                disc = next_disc
                next_disc += 1
                ch.discussions.setdefault(forum.index, []).append(
                    NewDiscussion(disc, forum.index, next_post, n)
                )
                new_by_forum.setdefault(forum.index, []).append(disc)
                parent = 0
                counts["discussions"] += 1
            else:
                cands = [forum.disc_ids[k] for k in forum.recent()] + new_by_forum.get(
                    forum.index, []
                )
                disc = rng.choice(cands)
                existing = discussion_posts(forum, disc)
                parent = existing[0] if rng.random() < 0.3 else rng.choice(existing)
            spec = None
            if parent and new_file_due and first_reply:
                first_reply = False
                kind, mime = rng.choice((("png", "image/png"), ("pdf", "application/pdf")))
                spec = FileSpec(
                    next_file, forum.contextid, "mod_forum", "attachment", next_post,
                    f"night{n:02d}-upload.{kind}", mime, user, rng.randint(80_000, 400_000),
                    times[i], sub_seed(plan.seed, "night-blob", n),
                )  # fmt: skip
                next_file += 2
                ch.files.append(spec)
                counts["files"] += 1
            post = NewPost(next_post, disc, forum.index, parent, user, times[i], n, spec)
            ch.posts.setdefault(disc, []).append(post)
            created_of[next_post] = times[i]
            next_post += 1
            per_forum[forum.index] = per_forum.get(forum.index, 0) + 1
            ch.active[user] = max(ch.active.get(user, 0), times[i])

        n_edits = rng.randint(2, 6)
        counts["edits"] = n_edits
        for _ in range(n_edits):
            forum = rng.choices(general, weights)[0]
            cands = [forum.disc_ids[k] for k in forum.recent()] + new_by_forum.get(forum.index, [])
            disc = rng.choice(cands)
            old = [p for p in discussion_posts(forum, disc) if created_of.get(p, 0) < t_prev]
            if not old:
                continue
            pid = rng.choice(old)
            ch.edits[pid] = (n, t_now - rng.randint(60, 3000))

        n_attempts = rng.randint(2, 5)
        counts["attempts"] = n_attempts
        for _ in range(n_attempts):
            user = rng.choice(plan.students)
            if user not in attempts_of:
                k = plan.students.index(user)
                base = plan.quiz.base_attempts
                attempts_of[user] = base // n_students + (1 if k < base % n_students else 0)
            attempts_of[user] += 1
            start = rng.randint(t_prev + 600, t_now - 3600)
            ch.attempts.append(NewAttempt(next_attempt, user, attempts_of[user], start, n))
            next_attempt += 1
            ch.quiz_grades[user] = (n, start + 1800)
            if user not in graded:
                graded.add(user)
                ch.new_grade_users.append(user)
            ch.active[user] = max(ch.active.get(user, 0), start + 1800)

        # Views at the base's own daily rate, plus the events of tonight's posts/attempts.
        days = max(1, (plan.base_backup - plan.start) // 86400)
        batches = [("course", max(10, int(plan.course_log_count / days * rng.uniform(0.6, 1.6))))]
        for forum in plan.forums:
            views = max(2, int(forum.log_count / days * rng.uniform(0.6, 1.6)))
            batches.append((f"forum{forum.index}", 2 * per_forum.get(forum.index, 0) + views))
        views = max(2, int(plan.quiz.log_count / days * rng.uniform(0.6, 1.6)))
        batches.append(("quiz", 3 * n_attempts + views))
        for key, count in batches:
            ch.logs.setdefault(key, []).append(LogBatch(next_log, count, n))
            next_log += count
            counts["logs"] += count
        ch.tonight = counts
    return ch


# --------------------------------------------------------------------------
# Binary files


def blob_bytes(spec: FileSpec) -> bytes:
    rng = random.Random(spec.blob_seed)
    body = rng.randbytes(spec.filesize)
    if spec.mimetype == "image/png":
        head = (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
            + struct.pack(">II", 1200, 800)
            + b"\x08\x06\x00\x00\x00"
        )
        return head + body[len(head) :]
    if spec.mimetype == "image/jpeg":
        head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        return head + body[len(head) : -2] + b"\xff\xd9"
    head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    tail = b"\n%%EOF\n"
    return head + body[len(head) : -len(tail)] + tail


# --------------------------------------------------------------------------
# Synthetic course writers


class Clock:
    """File mtimes of a backup in progress: later files, later times."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.written = 0

    def stamp(self, path: Path, size: int | None = None) -> None:
        self.written += path.stat().st_size if size is None else size
        t = self.start + self.written // BACKUP_BYTES_PER_SECOND
        os.utime(path, (t, t))


def _fmt5(x: float) -> str:
    return f"{x:.5f}"


def _fmt7(x: float) -> str:
    return f"{x:.7f}"


def _b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def _write_forum(path: Path, plan: CoursePlan, forum: ForumPlan, ch: Changes) -> int:
    pool = plan.pool
    rng = random.Random(forum.content_seed)
    xf = XmlFile(path, "activity", [("id", forum.instance), ("moduleid", forum.cmid),
                                   ("modulename", "forum"), ("contextid", forum.contextid)])  # fmt: skip
    xf.open("forum", [("id", forum.instance)])
    intro = pool.message(sub_rng(plan.seed, "intro", forum.index), 150, 500)
    xf.leaves(
        [
            ("type", forum.kind), ("name", forum.name), ("intro", intro), ("introformat", 1),
            ("duedate", 0), ("cutoffdate", 0), ("assessed", 1 if forum.assessed else 0),
            ("assesstimestart", 0), ("assesstimefinish", 0), ("scale", 10 if forum.assessed else 0),
            ("maxbytes", 0), ("maxattachments", 9), ("forcesubscribe", 1 if forum.kind == "news" else 0),
            ("trackingtype", 1), ("rsstype", 0), ("rssarticles", 0), ("timemodified", plan.start - 86400),
            ("warnafter", 0), ("blockafter", 0), ("blockperiod", 0), ("completiondiscussions", 0),
            ("completionreplies", 0), ("completionposts", 0), ("displaywordcount", 0),
            ("lockdiscussionafter", 0), ("grade_forum", 0),
        ]
    )  # fmt: skip
    xf.open("discussions")
    posters = plan.students + plan.teachers
    for pos in range(len(forum.disc_ids)):
        disc = forum.disc_ids[pos]
        name = pool.title(rng)
        first = forum.first_posts[pos]
        t = forum.timestarts[pos]
        author = rng.choice(plan.teachers if forum.kind == "news" else posters)
        records = []
        for k in range(forum.counts[pos]):
            pid = first + k
            if k:
                t = min(plan.base_backup - 3600, t + int(rng.expovariate(1 / 20000)) + 30)
                parent = first if rng.random() < 0.35 else first + rng.randrange(k)
                user = rng.choice(posters)
            else:
                parent, user = 0, author
            spec = plan.attachments.get(pid)
            if spec is not None:
                user = spec.userid
            message = pool.message(rng)
            modified = t + (rng.randint(60, 7200) if rng.random() < 0.08 else 0)
            ratings = None
            if forum.assessed and k and rng.random() < 0.3:
                ratings = [
                    (rng.choice(plan.teachers), rng.randint(4, 10))
                    for _ in range(rng.randint(1, 2))
                ]
            records.append((pid, parent, user, t, modified, message, spec, ratings))
        new_posts = ch.posts.get(disc, [])
        _write_discussion(xf, plan, forum, disc, name, records, new_posts, ch)
    for nd in ch.discussions.get(forum.index, []):
        drng = sub_rng(plan.seed, "new-discussion", nd.discussion_id)
        posts = ch.posts.get(nd.discussion_id, [])
        _write_discussion(xf, plan, forum, nd.discussion_id, pool.title(drng), [], posts, ch)
    xf.close()  # discussions
    xf.open("subscriptions")
    srng = sub_rng(plan.seed, "subs", forum.index)
    sub_id = 100 + forum.index * 10000
    for user in plan.users:
        if srng.random() < 0.2:
            sub_id += 1
            xf.record("subscription", [("id", sub_id)], [("userid", user)])
    xf.close()
    for name in ("digests", "readposts", "trackedprefs", "poststags", "grades"):
        xf.empty(name)
    return xf.finish()


def _post_xml(
    pid: int,
    parent: int,
    user: int,
    created: int,
    modified: int,
    subject: str,
    message: str,
    attachment: str,
    ratings: Sequence[tuple[int, int, int, int]],
    scale: int,
) -> str:
    p = "\n            "
    out = (
        f'\n          <post id="{pid}">{p}<parent>{parent}</parent>{p}<userid>{user}</userid>'
        f"{p}<created>{created}</created>{p}<modified>{modified}</modified>{p}<mailed>1</mailed>"
        f"{p}<subject>{esc_text(subject)}</subject>{p}<message>{esc_text(message)}</message>"
        f"{p}<messageformat>1</messageformat>{p}<messagetrust>0</messagetrust>"
        f"{p}<attachment>{attachment}</attachment>{p}<totalscore>{len(ratings)}</totalscore>"
        f"{p}<mailnow>0</mailnow>{p}<privatereplyto>0</privatereplyto>{p}<ratings>"
    )
    r = "\n                "
    for rid, ruser, value, rtime in ratings:
        out += (
            f'\n              <rating id="{rid}">{r}<component>mod_forum</component>'
            f"{r}<ratingarea>post</ratingarea>{r}<scaleid>{scale}</scaleid>{r}<value>{value}</value>"
            f"{r}<userid>{ruser}</userid>{r}<timecreated>{rtime}</timecreated>"
            f"{r}<timemodified>{rtime}</timemodified>\n              </rating>"
        )
    return out + "\n            </ratings>\n          </post>"


def _write_discussion(
    xf: XmlFile,
    plan: CoursePlan,
    forum: ForumPlan,
    disc: int,
    name: str,
    records: list[
        tuple[int, int, int, int, int, str, FileSpec | None, list[tuple[int, int]] | None]
    ],
    new_posts: list[NewPost],
    ch: Changes,
) -> None:
    rendered: list[str] = []
    last_t, last_user = 0, 0
    first_post, first_user = 0, 0
    for pid, parent, user, created, modified, message, spec, ratings in records:
        edit = ch.edits.get(pid)
        if edit is not None:
            message = plan.pool.message(sub_rng(plan.seed, "edit", edit[0], pid))
            modified = edit[1]
        rating_rows = [
            (pid * 3 + j, ruser, value, created + 3600 * (j + 1))
            for j, (ruser, value) in enumerate(ratings or ())
        ]
        subject = name if parent == 0 else f"Re: {name}"
        rendered.append(
            _post_xml(pid, parent, user, created, modified, subject, message, "1" if spec else "",
                      rating_rows, 10)
        )  # fmt: skip
        if parent == 0:
            first_post, first_user = pid, user
        if modified >= last_t:
            last_t, last_user = modified, user
    for post in new_posts:
        message = plan.pool.message(sub_rng(plan.seed, "post", post.post_id))
        modified = post.created
        edit = ch.edits.get(post.post_id)
        if edit is not None:
            message = plan.pool.message(sub_rng(plan.seed, "edit", edit[0], post.post_id))
            modified = edit[1]
        subject = name if post.parent == 0 else f"Re: {name}"
        rendered.append(
            _post_xml(post.post_id, post.parent, post.userid, post.created, modified, subject, message,
                      "1" if post.file else "", [], 10)
        )  # fmt: skip
        if post.parent == 0:
            first_post, first_user = post.post_id, post.userid
        if modified >= last_t:
            last_t, last_user = modified, post.userid
    xf.open("discussion", [("id", disc)])
    xf.leaves(
        [
            ("name", name), ("firstpost", first_post), ("userid", first_user), ("groupid", -1),
            ("assessed", 1 if forum.assessed else 0), ("timemodified", last_t), ("usermodified", last_user),
            ("timestart", 0), ("timeend", 0), ("pinned", 1 if disc % 97 == 0 else 0), ("timelocked", 0),
        ]
    )  # fmt: skip
    xf.open("posts")
    for chunk in rendered:
        xf.raw(chunk)
    xf.close()
    xf.empty("discussion_subs")
    xf.close()


def _attempt_outcome(plan: CoursePlan, index: int) -> list[int]:
    """Per question: chosen answer (0 = right) for attempt number ``index``."""
    rng = sub_rng(plan.seed, "attempt", index)
    skill = rng.random()
    return [
        0 if rng.random() < 0.35 + 0.6 * skill else rng.randint(1, 3)
        for _ in range(plan.quiz.n_questions)
    ]


def _attempt_score(plan: CoursePlan, index: int) -> float:
    return float(sum(1 for a in _attempt_outcome(plan, index) if a == 0))


def _answer_text(q: int, a: int) -> str:
    return f"Option {'ABCD'[a]} for question {q + 1}"


def _write_attempt(
    xf: XmlFile, plan: CoursePlan, index: int, user: int, attemptnum: int, start: int
) -> None:
    quiz = plan.quiz
    outcome = _attempt_outcome(plan, index)
    finish = start + 300 + sub_rng(plan.seed, "duration", index).randint(0, 3000)
    score = float(sum(1 for a in outcome if a == 0))
    usage = quiz.usage_id0 + index
    xf.open("attempt", [("id", quiz.attempt_id0 + index)])
    xf.leaves(
        [
            ("uniqueid", usage), ("userid", user), ("attemptnum", attemptnum), ("currentpage", 1),
            ("preview", 0), ("state", "finished"), ("timestart", start), ("timefinish", finish),
            ("timemodified", finish), ("timemodifiedoffline", 0), ("timecheckstate", None),
            ("sumgrades", _fmt5(score)), ("gradednotificationsenttime", finish),
        ]
    )  # fmt: skip
    xf.open("question_usage", [("id", usage)])
    xf.leaves([("component", "mod_quiz"), ("preferredbehaviour", "deferredfeedback")])
    xf.open("question_attempts")
    for slot, chosen in enumerate(outcome):
        qa = quiz.qa_id0 + index * quiz.n_questions + slot
        right = _answer_text(slot, 0)
        xf.open("question_attempt", [("id", qa)])
        xf.leaves(
            [
                ("slot", slot + 1), ("behaviour", "deferredfeedback"), ("questionid", quiz.question_ids[slot]),
                ("variant", 1), ("maxmark", _fmt7(1)), ("minfraction", _fmt7(0)), ("maxfraction", _fmt7(1)),
                ("flagged", 0),
                ("questionsummary", f"Which statement about topic {slot + 1} is correct?: "
                 + "; ".join(_answer_text(slot, a) for a in range(4))),
                ("rightanswer", right), ("responsesummary", _answer_text(slot, chosen)),
                ("timemodified", finish),
            ]
        )  # fmt: skip
        xf.open("steps")
        step0 = quiz.step_id0 + 3 * (index * quiz.n_questions + slot)
        order = ",".join(str(quiz.answer_base + slot * 4 + a) for a in (2, 0, 3, 1))
        states = [
            ("todo", None, start, [("_order", order)]),
            ("complete", None, start + 60 * (slot + 1), [("answer", str(chosen))]),
            ("gradedright" if chosen == 0 else "gradedwrong", _fmt7(1 if chosen == 0 else 0), finish,
             [("-finish", "1")]),
        ]  # fmt: skip
        for s, (state, fraction, t, variables) in enumerate(states):
            xf.open("step", [("id", step0 + s)])
            xf.leaves([("sequencenumber", s), ("state", state), ("fraction", fraction),
                       ("timecreated", t), ("userid", user)])  # fmt: skip
            xf.open("response")
            for vname, value in variables:
                xf.record("variable", [], [("name", vname), ("value", value)])
            xf.close()
            xf.close()
        xf.close()  # steps
        xf.close()  # question_attempt
    xf.close()  # question_attempts
    xf.close()  # question_usage
    xf.close()  # attempt


def _quiz_grades(plan: CoursePlan, ch: Changes) -> list[tuple[int, int, float, int]]:
    """(grade id, user, grade out of 10, timemodified) in id order."""
    quiz = plan.quiz
    n = len(plan.students)
    best: dict[int, tuple[float, int]] = {}
    for index in range(quiz.base_attempts):
        user, _ = base_attempt_user(plan, index)
        score = _attempt_score(plan, index)
        t = plan.start + (plan.base_backup - plan.start) * (index + 1) // (quiz.base_attempts + 1)
        if score >= best.get(user, (-1.0, 0))[0]:
            best[user] = (score, t)
    for att in ch.attempts:
        score = _attempt_score(plan, att.index)
        old = best.get(att.userid, (-1.0, 0))
        best[att.userid] = (max(old[0], score), ch.quiz_grades[att.userid][1])
    rows = []
    graded_base = [plan.students[i] for i in range(min(n, quiz.base_attempts))]
    for k, user in enumerate(graded_base + ch.new_grade_users):
        score, t = best[user]
        rows.append((quiz.grade_id0 + k, user, score * 10 / quiz.n_questions, t))
    return rows


def _write_quiz(path: Path, plan: CoursePlan, ch: Changes) -> int:
    quiz = plan.quiz
    xf = XmlFile(path, "activity", [("id", quiz.instance), ("moduleid", quiz.cmid),
                                   ("modulename", "quiz"), ("contextid", quiz.contextid)])  # fmt: skip
    xf.open("quiz", [("id", quiz.instance)])
    xf.leaves(
        [
            ("name", "Weekly check-in quiz"), ("intro", "<p>Ten questions on this term's material.</p>"),
            ("introformat", 1), ("timeopen", 0), ("timeclose", 0), ("timelimit", 3600),
            ("overduehandling", "autosubmit"), ("graceperiod", 0), ("preferredbehaviour", "deferredfeedback"),
            ("canredoquestions", 0), ("attempts_number", 0), ("attemptonlast", 0), ("grademethod", 1),
            ("decimalpoints", 2), ("questiondecimalpoints", -1), ("reviewattempt", 69904),
            ("reviewcorrectness", 4368), ("reviewmarks", 4368), ("reviewspecificfeedback", 4368),
            ("reviewgeneralfeedback", 4368), ("reviewrightanswer", 4368), ("reviewoverallfeedback", 4368),
            ("questionsperpage", 1), ("navmethod", "free"), ("shuffleanswers", 1),
            ("sumgrades", _fmt5(quiz.n_questions)), ("grade", _fmt5(10)), ("timecreated", plan.start),
            ("timemodified", plan.start), ("password", ""), ("subnet", ""), ("browsersecurity", "-"),
            ("delay1", 0), ("delay2", 0), ("showuserpicture", 0), ("showblocks", 0),
            ("completionattemptsexhausted", 0), ("completionminattempts", 0), ("allowofflineattempts", 0),
        ]
    )  # fmt: skip
    xf.empty("subplugin_quizaccess_seb_quiz")
    xf.open("question_instances")
    for slot in range(quiz.n_questions):
        xf.open("question_instance", [("id", quiz.instance * 100 + slot)])
        xf.leaves([("slot", slot + 1), ("page", slot + 1), ("displaynumber", None),
                   ("requireprevious", 0), ("maxmark", _fmt7(1))])  # fmt: skip
        xf.open("question_reference", [("id", quiz.instance * 100 + 50 + slot)])
        xf.leaves([("usingcontextid", quiz.contextid), ("component", "mod_quiz"), ("questionarea", "slot"),
                   ("questionbankentryid", quiz.question_ids[slot] - 1), ("version", None)])  # fmt: skip
        xf.close()
        xf.close()
    xf.close()
    xf.open("sections")
    xf.record(
        "section",
        [("id", quiz.instance)],
        [("firstslot", 1), ("heading", ""), ("shufflequestions", 0)],
    )
    xf.close()
    xf.empty("feedbacks")
    xf.empty("overrides")
    xf.open("grades")
    for gid, user, grade, t in _quiz_grades(plan, ch):
        xf.record(
            "grade",
            [("id", gid)],
            [("userid", user), ("gradeval", _fmt5(grade)), ("timemodified", t)],
        )
    xf.close()
    xf.open("attempts")
    span = plan.base_backup - plan.start
    for index in range(quiz.base_attempts):
        user, num = base_attempt_user(plan, index)
        start = plan.start + span * (index + 1) // (quiz.base_attempts + 1) - 1800
        _write_attempt(xf, plan, index, user, num, start)
    for att in ch.attempts:
        _write_attempt(xf, plan, att.index, att.userid, att.attemptnum, att.timestart)
    xf.close()
    return xf.finish()


def _grade_item_fields(
    itemname: Value, itemtype: str, module: Value, instance: int, number: Value, sortorder: int, t: int,
    category: Value, aggcoef2: str = "0.00000",
) -> list[tuple[str, Value]]:  # fmt: skip
    return [
        ("categoryid", category), ("itemname", itemname), ("itemtype", itemtype), ("itemmodule", module),
        ("iteminstance", instance), ("itemnumber", number), ("iteminfo", None), ("idnumber", ""),
        ("calculation", None), ("gradetype", 1), ("grademax", _fmt5(100 if itemtype != "mod" else 10)),
        ("grademin", _fmt5(0)), ("scaleid", None), ("outcomeid", None), ("gradepass", _fmt5(0)),
        ("multfactor", _fmt5(1)), ("plusfactor", _fmt5(0)), ("aggregationcoef", _fmt5(0)),
        ("aggregationcoef2", aggcoef2), ("weightoverride", 0), ("sortorder", sortorder), ("display", 0),
        ("decimals", None), ("hidden", 0), ("locked", 0), ("locktime", 0), ("needsupdate", 0),
        ("timecreated", t), ("timemodified", t),
    ]  # fmt: skip


def _write_grade_grades(xf: XmlFile, rows: Iterable[GradeRow], grademax: int) -> None:
    xf.open("grade_grades")
    for gid, user, value, modifier, t in rows:
        v = None if value is None else _fmt5(value)
        xf.open("grade_grade", [("id", gid)])
        xf.leaves(
            [
                ("userid", user), ("rawgrade", v), ("rawgrademax", _fmt5(grademax)), ("rawgrademin", _fmt5(0)),
                ("rawscaleid", None), ("usermodified", modifier), ("finalgrade", v), ("hidden", 0),
                ("locked", 0), ("locktime", 0), ("exported", 0), ("overridden", 0), ("excluded", 0),
                ("feedback", None), ("feedbackformat", 0), ("information", None), ("informationformat", 0),
                ("timecreated", None if t is None else t - 60), ("timemodified", t),
                ("aggregationstatus", "used" if value is not None else "unknown"),
                ("aggregationweight", None if value is None else _fmt5(1)),
            ]
        )  # fmt: skip
        xf.close()
    xf.close()


def _write_gradebook(path: Path, plan: CoursePlan, ch: Changes) -> int:
    xf = XmlFile(path, "gradebook")
    xf.empty("attributes")
    xf.open("grade_categories")
    xf.record(
        "grade_category",
        [("id", plan.category_id)],
        [("parent", None), ("depth", 1), ("path", f"/{plan.category_id}/"), ("fullname", "?"),
         ("aggregation", 13), ("keephigh", 0), ("droplow", 0), ("aggregateonlygraded", 1),
         ("aggregateoutcomes", 0), ("timecreated", plan.start), ("timemodified", plan.start), ("hidden", 0)],
    )  # fmt: skip
    xf.close()
    xf.open("grade_items")
    gid = plan.grade_grade_id0
    for k, (item, label) in enumerate(plan.gradebook_items):
        if label == "course":
            fields = _grade_item_fields(
                None, "course", None, plan.category_id, None, 1, plan.start, None
            )
        else:
            fields = _grade_item_fields(label, "manual", None, plan.courseid, None, 2 + k, plan.start,
                                        plan.category_id, "1.00000")  # fmt: skip
        xf.open("grade_item", [("id", item)])
        xf.leaves(fields)
        rows = []
        for user in plan.students:
            grng = sub_rng(plan.seed, "gradebook", item, user)
            value: float | None = round(grng.uniform(35, 100), 2) if grng.random() < 0.92 else None
            t: int | None = plan.base_backup - grng.randint(3600, 40 * 86400)
            if label == "course" and user in ch.quiz_grades:
                night, t = ch.quiz_grades[user]
                value = round(sub_rng(plan.seed, "total", user, night).uniform(40, 100), 2)
            modifier: int | None = plan.teachers[0] if label != "course" else None
            rows.append((gid, user, value, modifier if value is not None else None, t))
            gid += 1
        _write_grade_grades(xf, rows, 100)
        xf.close()
    xf.close()
    xf.empty("grade_letters")
    xf.open("grade_settings")
    xf.record("grade_setting", [("id", "")], [("name", "minmaxtouse"), ("value", 1)])
    xf.close()
    return xf.finish()


def _write_activity_grades(
    path: Path, plan: CoursePlan, item: int, name: str, module: str, instance: int,
    rows: list[GradeRow],
) -> int:  # fmt: skip
    xf = XmlFile(path, "activity_gradebook")
    xf.open("grade_items")
    if item:
        xf.open("grade_item", [("id", item)])
        xf.leaves(_grade_item_fields(name, "mod", module, instance, 0, 5, plan.start, plan.category_id,
                                     "1.00000"))  # fmt: skip
        _write_grade_grades(xf, rows, 10)
        xf.close()
    xf.close()
    xf.empty("grade_letters")
    return xf.finish()


_COURSE_EVENTS = (
    ("\\core\\event\\course_viewed", "core", "viewed", "course", None, "r", 2),
    ("\\core\\event\\user_list_viewed", "core", "viewed", "user_list", "course", "r", 0),
    ("\\gradereport_user\\event\\grade_report_viewed", "gradereport_user", "viewed", "grade_report", None, "r", 1),
    ("\\core\\event\\course_viewed", "core", "viewed", "course", None, "r", 2),
    ("\\mod_forum\\event\\course_module_instance_list_viewed", "mod_forum", "viewed", "course_module_instance_list",
     None, "r", 2),
)  # fmt: skip
_FORUM_EVENTS = (
    ("\\mod_forum\\event\\course_module_viewed", "mod_forum", "viewed", "course_module", "forum", "r", 2),
    ("\\mod_forum\\event\\discussion_viewed", "mod_forum", "viewed", "discussion", "forum_discussions", "r", 2),
    ("\\mod_forum\\event\\post_created", "mod_forum", "created", "post", "forum_posts", "c", 2),
    ("\\mod_forum\\event\\assessable_uploaded", "mod_forum", "uploaded", "assessable", None, "c", 2),
)  # fmt: skip
_QUIZ_EVENTS = (
    ("\\mod_quiz\\event\\course_module_viewed", "mod_quiz", "viewed", "course_module", "quiz", "r", 2),
    ("\\mod_quiz\\event\\attempt_started", "mod_quiz", "started", "attempt", "quiz_attempts", "c", 2),
    ("\\mod_quiz\\event\\attempt_submitted", "mod_quiz", "submitted", "attempt", "quiz_attempts", "u", 2),
    ("\\mod_quiz\\event\\attempt_reviewed", "mod_quiz", "reviewed", "attempt", "quiz_attempts", "r", 2),
)  # fmt: skip


def _log_xml(
    lid: int,
    event: tuple[str, str, str, str, str | None, str, int],
    objectid: int | None,
    contextid: int,
    user: int,
    other: str,
    t: int,
    ip: str,
) -> str:
    p = "\n        "
    name, component, action, target, table, crud, edulevel = event
    return (
        f'\n      <logstore_standard_log id="{lid}">{p}<eventname>{esc_text(name)}</eventname>'
        f"{p}<component>{component}</component>{p}<action>{action}</action>{p}<target>{target}</target>"
        f"{p}<objecttable>{table or NULL}</objecttable>{p}<objectid>{NULL if objectid is None else objectid}"
        f"</objectid>{p}<crud>{crud}</crud>{p}<edulevel>{edulevel}</edulevel>{p}<contextid>{contextid}</contextid>"
        f"{p}<userid>{user}</userid>{p}<relateduserid>{NULL}</relateduserid>{p}<anonymous>0</anonymous>"
        f"{p}<other>{other}</other>{p}<timecreated>{t}</timecreated>{p}<ip>{ip}</ip>"
        f"{p}<realuserid>{NULL}</realuserid>\n      </logstore_standard_log>"
    )


def _write_logstores(
    path: Path, plan: CoursePlan, key: str, base_first: int, base_count: int, ch: Changes
) -> int:
    """course/ or activity logstores.xml: base records, then each night's batch appended."""
    xf = XmlFile(path, "logstores")
    xf.open("logstore")
    xf.open("subplugin_logstore_standard_logstore")
    users = plan.users
    forum = next((f for f in plan.forums if key == f"forum{f.index}"), None)
    batches = [(base_first, base_count, 1, plan.start, plan.base_backup)]
    for b in ch.logs.get(key, []):
        batches.append(
            (b.first_id, b.count, b.night, plan.backup_time(b.night - 1), plan.backup_time(b.night))
        )
    for first, count, night, t0, t1 in batches:
        rng = sub_rng(plan.seed, "logs", key, night)
        night_posts = [
            p for p in (pp for lst in ch.posts.values() for pp in lst)
            if forum is not None and p.forum == forum.index and p.night == night
        ]  # fmt: skip
        chunk: list[str] = []
        obj: int | None
        for k in range(count):
            lid = first + k
            t = t0 + (t1 - t0) * k // max(1, count)
            user = rng.choice(users)
            ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            if forum is not None:
                event = _FORUM_EVENTS[rng.randrange(3)]
                ctx = forum.contextid
                if night > 1 and night_posts and event[3] != "course_module":
                    post = rng.choice(night_posts)
                    obj, disc, user = post.post_id, post.discussion_id, post.userid
                else:
                    d = rng.randrange(len(forum.disc_ids))
                    disc = forum.disc_ids[d]
                    obj = forum.first_posts[d]
                if event[3] == "course_module":
                    obj, other = forum.instance, _b64(None)
                elif event[3] == "discussion":
                    obj, other = disc, _b64(None)
                else:
                    other = _b64(
                        {"discussionid": disc, "forumid": forum.instance, "forumtype": forum.kind}
                    )
            elif key == "quiz":
                event = _QUIZ_EVENTS[rng.randrange(4)]
                ctx = plan.quiz.contextid
                if event[3] == "course_module":
                    obj, other = plan.quiz.instance, _b64(None)
                else:
                    obj = plan.quiz.attempt_id0 + rng.randrange(
                        plan.quiz.base_attempts + len(ch.attempts)
                    )
                    other = _b64({"quizid": plan.quiz.instance})
            else:
                event = _COURSE_EVENTS[rng.randrange(len(_COURSE_EVENTS))]
                ctx = plan.contextid
                obj = plan.courseid if event[4] == "course" else None
                other = _b64(None) if event[3] != "user_list" else _b64(
                    {"courseshortname": plan.shortname, "coursefullname": plan.fullname})  # fmt: skip
            chunk.append(_log_xml(lid, event, obj, ctx, user, other, t, ip))
            if len(chunk) >= 256:
                xf.raw("".join(chunk))
                chunk.clear()
        xf.raw("".join(chunk))
    return xf.finish()


def _user_fields(plan: CoursePlan, user: int, last: int) -> list[tuple[str, Value]]:
    rng = sub_rng(plan.seed, "user", user)
    first = rng.choice(_NAMES_FIRST)
    lastname = rng.choice(_NAMES_LAST)
    username = "admin" if user == 2 else f"{first[0]}{lastname}{user}".lower()
    created = plan.start - rng.randint(30, 900) * 86400
    return [
        ("username", username), ("idnumber", "" if user == 2 else f"S{user * 7919 % 10_000_000:07d}"),
        ("email", f"{username}@student.example.edu".replace("'", "")), ("phone1", ""), ("phone2", ""),
        ("institution", "Example University"), ("department", rng.choice(("Science", "Arts", "Engineering"))),
        ("address", ""), ("city", rng.choice(("Leeds", "Lyon", "Porto", "Gdańsk", "Kraków", "Osaka"))),
        ("country", rng.choice(("GB", "FR", "PT", "PL", "JP", "DE"))),
        ("lastip", f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"),
        ("picture", 0), ("description", None if rng.random() < 0.8 else "<p>Hello!</p>"),
        ("descriptionformat", 1), ("imagealt", None), ("auth", "manual"), ("firstnamephonetic", ""),
        ("lastnamephonetic", ""), ("middlename", ""), ("alternatename", ""), ("firstname", first),
        ("lastname", lastname), ("confirmed", 1), ("policyagreed", 0), ("deleted", 0), ("lang", "en"),
        ("theme", ""), ("timezone", "99"), ("firstaccess", created + 3600), ("lastaccess", last),
        ("lastlogin", last - rng.randint(3600, 86400 * 3)), ("currentlogin", last - rng.randint(0, 3600)),
        ("mailformat", 1), ("maildigest", 0), ("maildisplay", 2), ("autosubscribe", 1), ("trackforums", 0),
        ("timecreated", created), ("timemodified", created), ("trustbitmask", 0),
    ]  # fmt: skip


def _write_users(path: Path, plan: CoursePlan, ch: Changes) -> int:
    xf = XmlFile(path, "users")
    pref_id = sub_rng(plan.seed, "prefs").randint(1000, 90000)
    for user in plan.users:
        rng = sub_rng(plan.seed, "user-last", user)
        last = max(ch.active.get(user, 0), plan.base_backup - rng.randint(600, 20 * 86400))
        xf.open("user", [("id", user), ("contextid", plan.user_ctx(user))])
        xf.leaves(_user_fields(plan, user, last))
        xf.empty("custom_fields")
        xf.empty("tags")
        xf.open("preferences")
        for name, value in (
            ("core_message_migrate_data", "1"),
            ("email_bounce_count", "1"),
            ("email_send_count", str(rng.randint(1, 400))),
            ("login_failed_count_since_success", "0"),
        )[: 1 + user % 4]:
            pref_id += 1
            xf.record("preference", [("id", pref_id)], [("name", name), ("value", value)])
        xf.close()
        xf.open("roles")
        xf.empty("role_overrides")
        xf.empty("role_assignments")
        xf.close()
        xf.close()
    return xf.finish()


def _write_files(stage: Path, plan: CoursePlan, ch: Changes, clock: Clock) -> int:
    """files.xml plus one blob per distinct content hash under files/<hh>/."""
    xf = XmlFile(stage / "files.xml", "files")
    blobs_dir = stage / "files"
    blobs_dir.mkdir()
    for spec in plan.files + ch.files:
        data = blob_bytes(spec)
        sha = hashlib.sha1(data).hexdigest()
        (blobs_dir / sha[:2]).mkdir(exist_ok=True)
        blob = blobs_dir / sha[:2] / sha
        blob.write_bytes(data)
        clock.stamp(blob, len(data))
        for fid, name, chash, size, mime in (
            (spec.file_id, spec.filename, sha, spec.filesize, spec.mimetype),
            (spec.file_id + 1, ".", "da39a3ee5e6b4b0d3255bfef95601890afd80709", 0, None),
        ):
            xf.record(
                "file",
                [("id", fid)],
                [
                    ("contenthash", chash), ("contextid", spec.contextid), ("component", spec.component),
                    ("filearea", spec.filearea), ("itemid", spec.itemid), ("filepath", "/"), ("filename", name),
                    ("userid", spec.userid), ("filesize", size), ("mimetype", mime), ("status", 0),
                    ("timecreated", spec.time), ("timemodified", spec.time), ("source", name if size else None),
                    ("author", "Example University" if size else None),
                    ("license", "allrightsreserved" if size else None), ("sortorder", 0),
                    ("repositorytype", None), ("repositoryid", None), ("reference", None),
                ],
            )  # fmt: skip
    size = xf.finish()
    clock.stamp(stage / "files.xml")
    return size


def _write_inforef(path: Path, refs: Sequence[tuple[str, Iterable[int]]]) -> int:
    xf = XmlFile(path, "inforef")
    for item, ids in refs:
        values = list(ids)
        if not values:
            continue
        xf.open(f"{item}ref")
        for v in values:
            xf.record(item, [], [("id", v)])
        xf.close()
    return xf.finish()


def _write_module(
    path: Path, cmid: int, name: str, version: str, sectionid: int, secnum: int, added: int
) -> int:
    xf = XmlFile(path, "module", [("id", cmid), ("version", version)])
    xf.leaves(
        [
            ("modulename", name), ("sectionid", sectionid), ("sectionnumber", secnum), ("idnumber", ""),
            ("added", added), ("score", 0), ("indent", 0), ("visible", 1), ("visibleoncoursepage", 1),
            ("visibleold", 1), ("groupmode", 0), ("groupingid", 0), ("completion", 1),
            ("completiongradeitemnumber", None), ("completionpassgrade", 0), ("completionview", 0),
            ("completionexpected", 0), ("availability", None), ("showdescription", 0), ("downloadcontent", 1),
            ("lang", ""),
        ]
    )  # fmt: skip
    xf.empty("tags")
    return xf.finish()


def _write_activity_common(d: Path) -> None:
    small_xml(d / "roles.xml", "roles", ("role_overrides", "role_assignments"))
    small_xml(d / "filters.xml", "filters", ("filter_actives", "filter_configs"))
    small_xml(d / "comments.xml", "comments")
    small_xml(d / "calendar.xml", "events")
    small_xml(d / "completion.xml", "completions")
    small_xml(d / "competencies.xml", "course_module_competencies", ("competencies",))
    small_xml(d / "grade_history.xml", "grade_history", ("grade_grades",))


def _write_course_dir(d: Path, plan: CoursePlan, ch: Changes) -> None:
    xf = XmlFile(d / "course.xml", "course", [("id", plan.courseid), ("contextid", plan.contextid)])
    summary = plan.pool.message(sub_rng(plan.seed, "summary"), 300, 900)
    xf.leaves(
        [
            ("shortname", plan.shortname), ("fullname", plan.fullname), ("idnumber", plan.shortname.lower()),
            ("summary", summary), ("summaryformat", 1), ("format", "topics"), ("showgrades", 1),
            ("newsitems", 5), ("startdate", plan.start), ("enddate", plan.start + 300 * 86400),
            ("marker", 0), ("maxbytes", 0), ("legacyfiles", 0), ("showreports", 0), ("visible", 1),
            ("groupmode", 0), ("groupmodeforce", 0), ("defaultgroupingid", 0), ("lang", ""), ("theme", ""),
            ("timecreated", plan.start - 20 * 86400), ("timemodified", plan.start - 86400), ("requested", 0),
            ("showactivitydates", 1), ("showcompletionconditions", 1), ("enablecompletion", 1),
            ("completionnotify", 0),
        ]
    )  # fmt: skip
    xf.record("category", [("id", 3)], [("name", "Faculty of Science"), ("description", None)])
    xf.empty("tags")
    xf.empty("customfields")
    xf.open("courseformatoptions")
    for name, value in (("hiddensections", "0"), ("coursedisplay", "0")):
        xf.record("courseformatoption", [], [("format", "topics"), ("sectionid", 0), ("name", name),
                                             ("value", value)])  # fmt: skip
    xf.close()
    xf.finish()

    students = set(plan.students)
    _write_inforef(
        d / "inforef.xml",
        [("user", plan.users), ("role", (3, 5)), ("file", [plan.files[0].file_id])],
    )

    xf = XmlFile(d / "roles.xml", "roles")
    xf.empty("role_overrides")
    xf.open("role_assignments")
    aid = sub_rng(plan.seed, "ra").randint(100, 9000)
    for user in reversed(plan.users[1:]):
        aid += 1
        xf.record(
            "assignment",
            [("id", aid)],
            [("roleid", 5 if user in students else 3), ("userid", user), ("timemodified", plan.start - 86400),
             ("modifierid", 2), ("component", ""), ("itemid", 0), ("sortorder", 0)],
        )  # fmt: skip
    xf.close()
    xf.finish()

    xf = XmlFile(d / "enrolments.xml", "enrolments")
    xf.open("enrols")
    for eid, method, status, roleid in (
        (plan.courseid * 3, "manual", 0, 5),
        (plan.courseid * 3 + 1, "guest", 1, 0),
    ):
        xf.open("enrol", [("id", eid)])
        fields: list[tuple[str, Value]] = [
            ("enrol", method), ("status", status), ("name", None), ("enrolperiod", 0), ("enrolstartdate", 0),
            ("enrolenddate", 0), ("expirynotify", 0), ("expirythreshold", 86400), ("notifyall", 0),
            ("password", None if method == "manual" else ""), ("cost", None), ("currency", None),
            ("roleid", roleid),
        ]  # fmt: skip
        fields += [(f"customint{i}", None) for i in range(1, 9)]
        fields += [(f"customchar{i}", None) for i in range(1, 4)]
        fields += [(f"customdec{i}", None) for i in range(1, 3)]
        fields += [(f"customtext{i}", None) for i in range(1, 5)]
        fields += [
            ("timecreated", plan.start - 20 * 86400),
            ("timemodified", plan.start - 20 * 86400),
        ]
        xf.leaves(fields)
        xf.open("user_enrolments")
        if method == "manual":
            for k, user in enumerate(plan.users[1:]):
                xf.record(
                    "enrolment",
                    [("id", eid * 10 + k)],
                    [("status", 0), ("userid", user), ("timestart", plan.start), ("timeend", 0),
                     ("modifierid", 2), ("timemodified", plan.start - 86400)],
                )  # fmt: skip
        xf.close()
        xf.close()
    xf.close()
    xf.finish()

    small_xml(d / "filters.xml", "filters", ("filter_actives", "filter_configs"))
    small_xml(d / "comments.xml", "comments")
    small_xml(d / "calendar.xml", "events")
    small_xml(d / "competencies.xml", "course_competencies", ("competencies", "user_competencies"))
    small_xml(d / "completiondefaults.xml", "course_completion_defaults")
    small_xml(d / "contentbank.xml", "contents")
    _write_logstores(
        d / "logstores.xml", plan, "course", plan.course_log_first, plan.course_log_count, ch
    )


def _write_questions(path: Path, plan: CoursePlan) -> int:
    quiz = plan.quiz
    xf = XmlFile(path, "question_categories")
    top = quiz.question_ids[0] // 10 + 7
    for cat, name, parent in ((top, "top", 0), (top + 1, f"Default for {plan.shortname}", top)):
        xf.open("question_category", [("id", cat)])
        xf.leaves(
            [
                ("name", name), ("contextid", plan.contextid), ("contextlevel", 50),
                ("contextinstanceid", plan.courseid), ("info", "" if parent == 0 else "The default category."),
                ("infoformat", 0), ("stamp", f"moodle.example.edu+{plan.start}+{cat:06d}"), ("parent", parent),
                ("sortorder", 0 if parent == 0 else 999), ("idnumber", None),
            ]
        )  # fmt: skip
        xf.open("question_bank_entries")
        if parent:
            for slot, qid in enumerate(quiz.question_ids):
                xf.open("question_bank_entry", [("id", qid - 1)])
                xf.leaves([("questioncategoryid", cat), ("idnumber", None), ("ownerid", 2)])
                xf.open("question_version")
                xf.open("question_versions", [("id", qid)])
                xf.leaves([("version", 1), ("status", "ready")])
                xf.open("questions")
                xf.open("question", [("id", qid)])
                xf.leaves(
                    [
                        ("parent", 0), ("name", f"Topic {slot + 1} check"),
                        ("questiontext", f"<p>Which statement about topic {slot + 1} is correct?</p>"),
                        ("questiontextformat", 1), ("generalfeedback", ""), ("generalfeedbackformat", 1),
                        ("defaultmark", _fmt7(1)), ("penalty", "0.3333333"), ("qtype", "multichoice"),
                        ("length", 1), ("stamp", f"moodle.example.edu+{plan.start}+q{qid}"),
                        ("timecreated", plan.start), ("timemodified", plan.start), ("createdby", 2),
                        ("modifiedby", 2),
                    ]
                )  # fmt: skip
                xf.open("plugin_qtype_multichoice_question")
                xf.open("answers")
                for a in range(4):
                    xf.record(
                        "answer",
                        [("id", quiz.answer_base + slot * 4 + a)],
                        [("answertext", f"<p>{_answer_text(slot, a)}</p>"), ("answerformat", 1),
                         ("fraction", _fmt7(1 if a == 0 else 0)), ("feedback", ""), ("feedbackformat", 1)],
                    )  # fmt: skip
                xf.close()
                xf.record(
                    "multichoice",
                    [("id", qid // 10)],
                    [("layout", 0), ("single", 1), ("shuffleanswers", 1), ("correctfeedback", "Your answer is correct."),
                     ("correctfeedbackformat", 1), ("partiallycorrectfeedback", "Your answer is partially correct."),
                     ("partiallycorrectfeedbackformat", 1), ("incorrectfeedback", "Your answer is incorrect."),
                     ("incorrectfeedbackformat", 1), ("answernumbering", "abc"), ("shownumcorrect", 1),
                     ("showstandardinstruction", 0)],
                )  # fmt: skip
                xf.close()
                xf.open("plugin_qbank_comment_question")
                xf.empty("comments")
                xf.close()
                xf.empty("question_hints")
                xf.empty("tags")
                xf.close()  # question
                xf.close()  # questions
                xf.close()  # question_versions
                xf.close()  # question_version
                xf.close()  # question_bank_entry
        xf.close()
        xf.close()
    return xf.finish()


def _backup_name(plan: CoursePlan, t: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(t))
    return f"backup-moodle2-course-{plan.courseid}-{plan.shortname.lower()}-{stamp}.mbz"


def _write_moodle_backup(path: Path, plan: CoursePlan, night: int) -> int:
    t = plan.backup_time(night)
    name = _backup_name(plan, t)
    backup_id = hashlib.md5(f"{plan.seed}:{night}:backup".encode()).hexdigest()
    xf = XmlFile(path, "moodle_backup")
    xf.open("information")
    xf.leaves(
        [
            ("name", name), ("moodle_version", MOODLE_VERSION), ("moodle_release", MOODLE_RELEASE),
            ("backup_version", BACKUP_VERSION), ("backup_release", BACKUP_RELEASE), ("backup_date", t),
            ("mnet_remoteusers", 0), ("include_files", 1), ("include_file_references_to_external_content", 0),
            ("original_wwwroot", plan.wwwroot), ("original_site_identifier_hash", plan.site_hash),
            ("original_course_id", plan.courseid), ("original_course_format", "topics"),
            ("original_course_fullname", plan.fullname), ("original_course_shortname", plan.shortname),
            ("original_course_startdate", plan.start), ("original_course_enddate", plan.start + 300 * 86400),
            ("original_course_contextid", plan.contextid), ("original_system_contextid", 1),
        ]
    )  # fmt: skip
    xf.open("details")
    xf.record(
        "detail",
        [("backup_id", backup_id)],
        [("type", "course"), ("format", "moodle2"), ("interactive", 0), ("mode", 40), ("execution", 2),
         ("executiontime", 0)],
    )  # fmt: skip
    xf.close()
    xf.open("contents")
    xf.open("activities")
    for secid, _, modname, cmid, title in _activities(plan):
        xf.record("activity", [], [("moduleid", cmid), ("sectionid", secid), ("modulename", modname),
                                   ("title", title), ("directory", f"activities/{modname}_{cmid}")])  # fmt: skip
    xf.close()
    xf.open("sections")
    for secid, num in plan.sections:
        xf.record("section", [], [("sectionid", secid), ("title", str(num)),
                                  ("directory", f"sections/section_{secid}")])  # fmt: skip
    xf.close()
    xf.record(
        "course",
        [],
        [("courseid", plan.courseid), ("title", plan.shortname), ("directory", "course")],
    )
    xf.close()
    xf.open("settings")
    root = [
        ("filename", name), ("imscc11", "0"), ("users", "1"), ("anonymize", "0"), ("role_assignments", "1"),
        ("activities", "1"), ("blocks", "1"), ("files", "1"), ("filters", "1"), ("comments", "1"),
        ("badges", "1"), ("calendarevents", "1"), ("userscompletion", "1"), ("logs", "1"),
        ("grade_histories", "0"), ("questionbank", "1"), ("groups", "1"), ("competencies", "1"),
        ("customfield", "1"), ("contentbankcontent", "1"), ("legacyfiles", "1"),
    ]  # fmt: skip
    for sname, value in root:
        xf.record("setting", [], [("level", "root"), ("name", sname), ("value", value)])
    acts = _activities(plan)
    for secid, _ in plan.sections:
        for suffix in ("included", "userinfo"):
            xf.record("setting", [], [("level", "section"), ("section", f"section_{secid}"),
                                      ("name", f"section_{secid}_{suffix}"), ("value", "1")])  # fmt: skip
        for a_sec, _, modname, cmid, _ in acts:
            if a_sec != secid:
                continue
            for suffix in ("included", "userinfo"):
                xf.record("setting", [], [("level", "activity"), ("activity", f"{modname}_{cmid}"),
                                          ("name", f"{modname}_{cmid}_{suffix}"), ("value", "1")])  # fmt: skip
    xf.close()
    return xf.finish()


def _activities(plan: CoursePlan) -> list[tuple[int, int, str, int, str]]:
    """(section id, section number, modname, cmid, title) in course order."""
    acts = [(f.sectionid, f.section_number, "forum", f.cmid, f.name) for f in plan.forums]
    q = plan.quiz
    acts.append((q.sectionid, q.section_number, "quiz", q.cmid, "Weekly check-in quiz"))
    return sorted(acts, key=lambda a: (a[1], a[3]))


def _write_backup_log(path: Path, plan: CoursePlan, night: int) -> None:
    t = plan.backup_time(night) - 2
    backup_id = hashlib.md5(f"{plan.seed}:{night}:backup".encode()).hexdigest()
    steps = [
        ("info", f"instantiating backup controller {backup_id}"),
        ("debug", "setting controller status to 100"),
        ("debug", "loading controller plan"),
        ("debug", "setting controller status to 300"),
        ("debug", "applying plan defaults"),
        ("debug", "setting controller status to 400"),
        ("debug", "setting file inclusion to 1"),
        ("info", "checking plan security"),
        ("debug", "setting controller status to 500"),
        ("debug", "saving controller to db"),
        (
            "debug",
            f"calculating controller checksum {hashlib.md5(f'{backup_id}:1'.encode()).hexdigest()}",
        ),
        ("debug", "setting controller status to 700"),
        ("debug", "saving controller to db"),
        (
            "debug",
            f"calculating controller checksum {hashlib.md5(f'{backup_id}:2'.encode()).hexdigest()}",
        ),
        ("debug", "setting controller status to 800"),
        ("info", "executing backup plan"),
    ]
    lines = [f"[{_log_date(t + k // 4)}] [{level}] {msg}\n" for k, (level, msg) in enumerate(steps)]
    path.write_text("".join(lines), encoding="utf-8")
    os.utime(path, (t, t))


def _log_date(t: int, zone: str = "UTC") -> str:
    return time.strftime("%a %d %b %Y %H:%M:%S", time.gmtime(t)) + f" {zone}"


def build_synthetic(stage: Path, plan: CoursePlan, night: int) -> dict[str, Any]:
    """Write the whole course of ``night`` into the empty directory ``stage``."""
    ch = collect_changes(plan, night)
    clock = Clock(plan.backup_time(night))
    _write_backup_log(stage / LOG_NAME, plan, night)

    def done(path: Path) -> None:
        clock.stamp(path)

    for sub in ("activities", "sections", "course"):
        (stage / sub).mkdir()
    for f in plan.forums:
        d = stage / "activities" / f"forum_{f.cmid}"
        d.mkdir()
        _write_forum(d / "forum.xml", plan, f, ch)
        done(d / "forum.xml")
        _write_module(
            d / "module.xml",
            f.cmid,
            "forum",
            "2022112800",
            f.sectionid,
            f.section_number,
            plan.start,
        )
        file_ids = [s.file_id for s in plan.files + ch.files if s.contextid == f.contextid]
        _write_inforef(d / "inforef.xml", [("user", plan.users), ("file", file_ids),
                                           ("grade_item", [f.grade_item] if f.grade_item else [])])  # fmt: skip
        rows: list[GradeRow] = []
        if f.grade_item:
            for k, user in enumerate(plan.students):
                grng = sub_rng(plan.seed, "forum-grade", f.index, user)
                rows.append((10_000_000 + f.grade_item * 1000 + k, user, round(grng.uniform(4, 10), 5), plan.teachers[0],
                             plan.base_backup - grng.randint(3600, 30 * 86400)))  # fmt: skip
        _write_activity_grades(
            d / "grades.xml", plan, f.grade_item, f.name, "forum", f.instance, rows
        )
        _write_logstores(d / "logstores.xml", plan, f"forum{f.index}", f.log_first, f.log_count, ch)
        _write_activity_common(d)
        for p in d.iterdir():
            if p.name != "forum.xml":
                done(p)
    q = plan.quiz
    d = stage / "activities" / f"quiz_{q.cmid}"
    d.mkdir()
    _write_quiz(d / "quiz.xml", plan, ch)
    _write_module(
        d / "module.xml", q.cmid, "quiz", "2022112800", q.sectionid, q.section_number, plan.start
    )
    grades = _quiz_grades(plan, ch)
    graded = [user for _, user, _, _ in grades]
    cat = q.question_ids[0] // 10 + 7
    _write_inforef(d / "inforef.xml", [("user", sorted(graded)), ("grade_item", [q.grade_item]),
                                       ("question_category", [cat, cat + 1])])  # fmt: skip
    qrows: list[GradeRow] = [
        (10_000_000 + q.grade_item * 1000 + k, user, grade, user, t)
        for k, (_, user, grade, t) in enumerate(grades)
    ]
    _write_activity_grades(
        d / "grades.xml", plan, q.grade_item, "Weekly check-in quiz", "quiz", q.instance, qrows
    )
    _write_logstores(d / "logstores.xml", plan, "quiz", q.log_first, q.log_count, ch)
    _write_activity_common(d)
    for p in d.iterdir():
        done(p)

    acts = _activities(plan)
    for secid, num in plan.sections:
        sd = stage / "sections" / f"section_{secid}"
        sd.mkdir()
        xf = XmlFile(sd / "section.xml", "section", [("id", secid)])
        xf.leaves(
            [
                ("number", num), ("name", None if num == 0 else f"Week {num}"), ("summary", ""),
                ("summaryformat", 1), ("sequence", ",".join(str(a[3]) for a in acts if a[0] == secid)),
                ("visible", 1), ("availabilityjson", None), ("timemodified", plan.start),
            ]
        )  # fmt: skip
        xf.finish()
        _write_inforef(sd / "inforef.xml", [])
        for p in sd.iterdir():
            done(p)

    _write_course_dir(stage / "course", plan, ch)
    for p in (stage / "course").iterdir():
        done(p)

    _write_users(stage / "users.xml", plan, ch)
    done(stage / "users.xml")
    _write_files(stage, plan, ch, clock)
    _write_questions(stage / "questions.xml", plan)
    _write_gradebook(stage / "gradebook.xml", plan, ch)
    small_xml(stage / "grade_history.xml", "grade_history", ("grade_grades",))
    small_xml(stage / "groups.xml", "groups", ("groupings",))
    xf = XmlFile(stage / "roles.xml", "roles_definition")
    for rid, short in ((3, "editingteacher"), (5, "student")):
        xf.record("role", [("id", rid)], [("name", ""), ("shortname", short), ("nameincourse", None),
                                          ("description", ""), ("sortorder", rid), ("archetype", short)])  # fmt: skip
    xf.finish()
    small_xml(stage / "scales.xml", "scales_definition")
    small_xml(stage / "outcomes.xml", "outcomes_definition")
    small_xml(stage / "completion.xml", "course_completion")
    small_xml(stage / "badges.xml", "badges")
    for name in ("questions.xml", "gradebook.xml", "grade_history.xml", "groups.xml", "roles.xml",
                 "scales.xml", "outcomes.xml", "completion.xml", "badges.xml"):  # fmt: skip
        done(stage / name)
    _write_moodle_backup(stage / "moodle_backup.xml", plan, night)
    done(stage / "moodle_backup.xml")
    return {"changes": ch.tonight if night > 1 else {}}


# --------------------------------------------------------------------------
# Corpus mode: replay the nightly change on a real archive


_XML_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False, huge_tree=True)


def _safe_name(name: str) -> str | None:
    name = name[2:] if name.startswith("./") else name
    if name in ("", ".", "./"):
        return None
    parts = name.rstrip("/").split("/")
    if name.startswith("/") or ".." in parts:
        raise ValueError(f"unsafe member name in archive: {name!r}")
    return name


def extract_corpus(src: Path, dest: Path) -> list[tuple[str, bool]]:
    """Extract a tgz or zip .mbz; returns member (name, is_dir) in archive order."""
    order: list[tuple[str, bool]] = []
    with open(src, "rb") as fh:
        is_gzip = fh.read(2) == b"\x1f\x8b"
    if is_gzip:
        with tarfile.open(src, "r:gz") as tf:
            for info in tf:
                name = _safe_name(info.name)
                if name is None or name.rstrip("/") == INDEX_NAME:
                    continue
                target = dest / name.rstrip("/")
                if info.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    order.append((name.rstrip("/") + "/", True))
                    continue
                if not info.isfile():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src_fh = tf.extractfile(info)
                if src_fh is None:
                    continue
                with open(target, "wb") as out:
                    shutil.copyfileobj(src_fh, out, 1 << 20)
                os.utime(target, (info.mtime, info.mtime))
                order.append((name, False))
    else:
        with zipfile.ZipFile(src) as zf:
            for zinfo in zf.infolist():
                name = _safe_name(zinfo.filename)
                if name is None or name.rstrip("/") == INDEX_NAME:
                    continue
                target = dest / name.rstrip("/")
                if name.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    order.append((name, True))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(zinfo) as src_fh, open(target, "wb") as out:
                    shutil.copyfileobj(src_fh, out, 1 << 20)
                mtime = calendar.timegm((*zinfo.date_time, 0, 0, 0))
                os.utime(target, (mtime, mtime))
                order.append((name, False))
    return order


@dataclass
class CorpusState:
    stage: Path
    order: list[tuple[str, bool]]
    orig_mtimes: dict[str, int]
    orig_date: int
    seed: int
    night: int = 1
    tonight: dict[str, int] = field(default_factory=dict)


def open_corpus(src: Path, stage: Path, seed: int) -> CorpusState:
    order = extract_corpus(src, stage)
    mtimes = {name: int((stage / name).stat().st_mtime) for name, is_dir in order if not is_dir}
    if not (stage / LOG_NAME).exists():  # re-packed fixtures may lack it; Moodle always has one
        newest = max(mtimes.values(), default=DIR_MTIME)
        (stage / LOG_NAME).write_bytes(b"")
        os.utime(stage / LOG_NAME, (newest, newest))
        order.append((LOG_NAME, False))
        mtimes[LOG_NAME] = newest
    info = etree.parse(str(stage / "moodle_backup.xml"), _XML_PARSER).getroot().find("information")
    date_text = info.findtext("backup_date") if info is not None else None
    orig_date = int(date_text) if date_text else max(mtimes.values())
    return CorpusState(stage, order, mtimes, orig_date, seed)


def corpus_members(state: CorpusState) -> list[Member]:
    out = []
    for name, is_dir in state.order:
        if is_dir:
            out.append(Member(name, None, 0, None))
        else:
            path = state.stage / name
            st = path.stat()
            out.append(Member(name, path, st.st_size, int(st.st_mtime)))
    return out


def _write_canonical(path: Path, root: etree._Element) -> int:
    data = canonical_xml(root)
    check = canonical_xml(etree.fromstring(data, _XML_PARSER))
    if check != data:
        raise RuntimeError(f"{path}: re-serialisation is not stable")
    path.write_bytes(data)
    return len(data)


def _depth(elem: etree._Element) -> int:
    return sum(1 for _ in elem.iterancestors())


def _add_record(
    parent: etree._Element, tag: str, attrs: dict[str, str], fields: Sequence[tuple[str, str]],
    containers: Sequence[str] = (),
) -> etree._Element:  # fmt: skip
    elem = etree.SubElement(parent, tag, attrs)
    for name, value in fields:
        etree.SubElement(elem, name).text = value
    for name in containers:
        child = etree.SubElement(elem, name)
        child.text = "\n" + "  " * _depth(child)  # empty container, §2 rule 5
    return elem


def _is_leaf(elem: etree._Element) -> bool:
    """A final element, not an empty container (whose text is only newline + indent)."""
    if len(elem):
        return False
    text = elem.text or ""
    return not (text.startswith("\n") and not text.strip())


def _fields_like(template: etree._Element | None, wanted: dict[str, str]) -> list[tuple[str, str]]:
    """Field order of an existing record of this archive (its Moodle version), else ours."""
    if template is None:
        return list(wanted.items())
    names = [str(c.tag) for c in template if isinstance(c.tag, str) and _is_leaf(c)]
    return [(n, wanted.get(n, "0")) for n in names]


def _version_fields(version: int, kind: str) -> list[str]:
    if kind == "discussion":
        names = ["name", "firstpost", "userid", "groupid", "assessed", "timemodified", "usermodified",
                 "timestart", "timeend"]  # fmt: skip
        if version >= 2016052300:
            names.append("pinned")
        if version >= 2018120300:
            names.append("timelocked")
        return names
    names = ["parent", "userid", "created", "modified", "mailed", "subject", "message", "messageformat",
             "messagetrust", "attachment", "totalscore", "mailnow"]  # fmt: skip
    if version >= 2019052000:
        names.append("privatereplyto")
    return names


def apply_corpus_night(state: CorpusState, night: int) -> None:
    """Apply the change of ``night`` (state must be at night - 1)."""
    if night != state.night + 1:
        raise ValueError(f"corpus state is at night {state.night}, cannot apply night {night}")
    stage = state.stage
    rng = sub_rng(state.seed, "corpus-night", night)
    t_now = (
        state.orig_date + (night - 1) * 86400 + sub_rng(state.seed, "jitter", night).randint(0, 900)
    )
    t_prev = state.orig_date + (night - 2) * 86400
    counts = {"posts": 0, "discussions": 0, "edits": 0, "attempts": 0, "files": 0, "logs": 0}
    counts["activities"] = 0

    mb_path = stage / "moodle_backup.xml"
    mb = etree.parse(str(mb_path), _XML_PARSER).getroot()
    info = mb.find("information")
    if info is None:
        raise ValueError("moodle_backup.xml has no <information>")
    version = int(float(info.findtext("backup_version") or "0"))

    users: list[int] = []
    if (stage / "users.xml").exists():
        uroot = etree.parse(str(stage / "users.xml"), _XML_PARSER).getroot()
        users = [int(u.get("id", "0")) for u in uroot.findall("user")]
    posters = users or [2]

    if not any(stage.glob("activities/forum_*/forum.xml")):
        _add_corpus_forum(state, info, version, t_prev + 60)
        counts["activities"] = 1
    forums = sorted(
        stage.glob("activities/forum_*/forum.xml"), key=lambda p: int(p.parent.name.split("_")[1])
    )
    if forums:
        trees = [(p, etree.parse(str(p), _XML_PARSER).getroot()) for p in forums]
        all_posts = [int(e.get("id", "0")) for _, r in trees for e in r.iter("post")]
        all_discs = [int(e.get("id", "0")) for _, r in trees for e in r.iter("discussion")]
        next_post = max(all_posts, default=rng.randint(100, 900)) + 1
        next_disc = max(all_discs, default=rng.randint(10, 90)) + 1
        path, root = max(
            trees,
            key=lambda pr: (
                len(pr[1].findall(".//discussion")),
                pr[1].findtext("forum/type") != "news",
            ),
        )
        forum = root.find("forum")
        discussions = forum.find("discussions") if forum is not None else None
        if forum is None or discussions is None:
            raise ValueError(f"{path}: no forum/discussions element")
        post_tpl = next(root.iter("post"), None)
        disc_tpl = next(root.iter("discussion"), None)
        n_posts = rng.randint(20, 40)
        times = sorted(rng.randint(t_prev + 120, t_now - 120) for _ in range(n_posts))
        existing_before = {int(e.get("id", "0")) for e in root.iter("post")}

        def new_post(
            disc: etree._Element, parent: int, user: int, created: int, subject: str
        ) -> None:
            nonlocal next_post
            posts = disc.find("posts")
            if posts is None:
                posts = etree.SubElement(disc, "posts")
            message = _corpus_message(state.seed, next_post)
            wanted = {
                "parent": str(parent), "userid": str(user), "created": str(created), "modified": str(created),
                "mailed": "1", "subject": subject, "message": message, "messageformat": "1",
                "messagetrust": "0", "attachment": "", "totalscore": "0", "mailnow": "0", "privatereplyto": "0",
            }  # fmt: skip
            fields = _fields_like(post_tpl, wanted) if post_tpl is not None else [
                (n, wanted[n]) for n in _version_fields(version, "post")]  # fmt: skip
            _add_record(posts, "post", {"id": str(next_post)}, fields, ["ratings"])
            next_post += 1
            counts["posts"] += 1

        for i in range(n_posts):
            discs = discussions.findall("discussion")
            if not discs or (i == 0 and rng.random() < 0.3):
                user = rng.choice(posters)
                name = _corpus_title(state.seed, next_disc)
                wanted = {
                    "name": name, "firstpost": str(next_post), "userid": str(user), "groupid": "-1",
                    "assessed": forum.findtext("assessed") or "0", "timemodified": str(times[i]),
                    "usermodified": str(user), "timestart": "0", "timeend": "0", "pinned": "0", "timelocked": "0",
                }  # fmt: skip
                fields = _fields_like(disc_tpl, wanted) if disc_tpl is not None else [
                    (n, wanted[n]) for n in _version_fields(version, "discussion")]  # fmt: skip
                disc = _add_record(discussions, "discussion", {"id": str(next_disc)}, fields)
                etree.SubElement(disc, "posts")
                subs = etree.SubElement(disc, "discussion_subs")
                subs.text = "\n" + "  " * _depth(subs)
                next_disc += 1
                counts["discussions"] += 1
                new_post(disc, 0, user, times[i], name)
                continue
            disc = rng.choice(discs[-3:])
            ids = [int(p.get("id", "0")) for p in disc.iter("post")]
            user = rng.choice(posters)
            parent = rng.choice(ids) if ids else 0
            new_post(disc, parent, user, times[i], f"Re: {disc.findtext('name') or ''}")
            for tag, value in (("timemodified", str(times[i])), ("usermodified", str(user))):
                elem = disc.find(tag)
                if elem is not None:
                    elem.text = value
        old = [p for p in root.iter("post") if int(p.get("id", "0")) in existing_before]
        for post in rng.sample(old, min(len(old), rng.randint(1, 3))):
            msg, mod = post.find("message"), post.find("modified")
            if msg is not None and mod is not None:
                msg.text = _corpus_message(state.seed, int(post.get("id", "0")), night)
                mod.text = str(t_now - rng.randint(60, 3000))
                counts["edits"] += 1
        _write_canonical(path, root)
        inforef = path.parent / "inforef.xml"
        if users and inforef.exists():
            _add_inforef_users(
                inforef, sorted({int(u.text or 0) for u in root.iter("userid")} & set(users))
            )

    info_set = {
        "backup_date": str(t_now),
    }
    old_name = info.findtext("name") or "backup.mbz"
    new_name = _corpus_backup_name(old_name, info, t_now)
    info_set["name"] = new_name
    for tag, value in info_set.items():
        elem = info.find(tag)
        if elem is not None:
            elem.text = value
    detail = info.find("details/detail")
    backup_id = hashlib.md5(f"{state.seed}:{night}:corpus".encode()).hexdigest()
    if detail is not None and "backup_id" in detail.attrib:
        detail.set("backup_id", backup_id)
    for setting in info.iterfind("settings/setting"):
        if setting.findtext("name") == "filename":
            value = setting.find("value")
            if value is not None:
                value.text = new_name
    _write_canonical(mb_path, mb)

    log_path = stage / LOG_NAME
    zone = "UTC"
    existing = log_path.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"\[\w{3} \d\d \w{3} \d{4} [\d:]{8} ([A-Z+\-0-9]+)\]", existing)
    if m:
        zone = m.group(1)
    lines = [
        ("info", f"instantiating backup controller {backup_id}"),
        ("debug", "setting controller status to 100"),
        ("debug", "loading controller plan"),
        ("debug", "applying plan defaults"),
        ("info", "checking plan security"),
        ("debug", "saving controller to db"),
        (
            "debug",
            f"calculating controller checksum {hashlib.md5(f'{backup_id}:c'.encode()).hexdigest()}",
        ),
        ("debug", "setting controller status to 800"),
    ]
    with open(log_path, "a", encoding="utf-8") as fh:
        if existing and not existing.endswith("\n"):
            fh.write("\n")
        for k, (level, msg) in enumerate(lines):
            fh.write(f"[{_log_date(t_now - 2 + k // 4, zone)}] [{level}] {msg}\n")
    counts["logs"] = len(lines)

    shift = t_now - state.orig_date
    for name, orig in state.orig_mtimes.items():
        t = orig + shift
        os.utime(stage / name, (t, t))
    state.night = night
    state.tonight = counts


_EMPTY_ACTIVITY_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "roles.xml": ("roles", ("role_overrides", "role_assignments")),
    "filters.xml": ("filters", ("filter_actives", "filter_configs")),
    "comments.xml": ("comments", ()),
    "calendar.xml": ("events", ()),
    "completion.xml": ("completions", ()),
    "competencies.xml": ("course_module_competencies", ("competencies",)),
    "grade_history.xml": ("grade_history", ("grade_grades",)),
    "grades.xml": ("activity_gradebook", ("grade_items", "grade_letters")),
    "grading.xml": ("areas", ()),
    "inforef.xml": ("inforef", ()),
}


def _forum_fields(version: int) -> tuple[list[tuple[str, str]], list[str]]:
    """forum finals and child containers as the backup of that Moodle version has them."""
    new = version >= 2019111800  # 3.8: due dates, forum grading
    names = ["type", "name", "intro", "introformat"] + (["duedate", "cutoffdate"] if new else [])
    names += ["assessed", "assesstimestart", "assesstimefinish", "scale", "maxbytes",
              "maxattachments", "forcesubscribe", "trackingtype", "rsstype", "rssarticles",
              "timemodified", "warnafter", "blockafter", "blockperiod", "completiondiscussions",
              "completionreplies", "completionposts"]  # fmt: skip
    if version >= 2013051400:
        names.append("displaywordcount")
    if version >= 2017051500:
        names.append("lockdiscussionafter")
    if new:
        names.append("grade_forum")
    values = {"type": "general", "name": "Course discussion", "introformat": "1",
              "intro": "<p>Questions and discussion about this course.</p>", "maxattachments": "9",
              "trackingtype": "1", "maxbytes": "512000"}  # fmt: skip
    containers = ["discussions", "subscriptions"]
    containers += ["digests"] if version >= 2014111000 else []
    containers += ["readposts", "trackedprefs"]
    containers += ["poststags"] if version >= 2017051500 else []
    containers += ["grades"] if new else []
    return [(n, values.get(n, "0")) for n in names], containers


def _add_corpus_forum(state: CorpusState, info: etree._Element, version: int, t: int) -> None:
    """A teacher adds a forum: new activity dir, manifest entries, section sequence.

    The module.xml and the set of per-activity files follow a sibling activity of the
    archive, so they match its Moodle version; new members go after the last
    ``activities/`` entry, the original order of everything else is kept.
    """
    stage = state.stage
    acts = stage / "activities"
    cmid, instance, ctx = 1, 1, 1
    sibling: Path | None = None
    for d in sorted(acts.iterdir()) if acts.is_dir() else []:
        mod, _, num = d.name.rpartition("_")
        if not num.isdigit() or not (d / f"{mod}.xml").exists():
            continue
        sibling = sibling or d
        root = etree.parse(str(d / f"{mod}.xml"), _XML_PARSER).getroot()
        cmid = max(cmid, int(num) + 1)
        instance = max(instance, int(root.get("id", "0")) + 1)
        ctx = max(ctx, int(root.get("contextid", "0")) + 1)
    section = info.find("contents/sections/section")
    sectionid = section.findtext("sectionid") if section is not None else None
    sec_dir = section.findtext("directory") if section is not None else None
    secnum = "0"
    if sec_dir and (stage / sec_dir / "section.xml").exists():
        sec_path = stage / sec_dir / "section.xml"
        sec_root = etree.parse(str(sec_path), _XML_PARSER).getroot()
        secnum = sec_root.findtext("number") or "0"
        seq = sec_root.find("sequence")
        if seq is not None:
            seq.text = ",".join(x for x in ((seq.text or "").strip(), str(cmid)) if x)
            _write_canonical(sec_path, sec_root)

    rel = f"activities/forum_{cmid}"
    d = stage / rel
    d.mkdir(parents=True)
    fields, containers = _forum_fields(version)
    fields = [(k, str(t) if k == "timemodified" else v) for k, v in fields]
    xf = XmlFile(d / "forum.xml", "activity", [("id", instance), ("moduleid", cmid),
                                              ("modulename", "forum"), ("contextid", ctx)])  # fmt: skip
    xf.open("forum", [("id", instance)])
    xf.leaves(fields)
    for name in containers:
        xf.empty(name)
    xf.finish()
    if sibling is not None and (sibling / "module.xml").exists():
        mroot = etree.parse(str(sibling / "module.xml"), _XML_PARSER).getroot()
        mroot.set("id", str(cmid))
        mroot.set("version", info.findtext("backup_version") or "0")
        for tag, value in (("modulename", "forum"), ("sectionid", sectionid or "0"),
                           ("sectionnumber", secnum), ("idnumber", ""), ("added", str(t))):  # fmt: skip
            elem = mroot.find(tag)
            if elem is not None:
                elem.text = value
        _write_canonical(d / "module.xml", mroot)
    else:
        _write_module(d / "module.xml", cmid, "forum", BACKUP_VERSION, int(sectionid or 0),
                      int(secnum), t)  # fmt: skip
    names = (
        {p.name for p in sibling.iterdir()} if sibling is not None else set(_EMPTY_ACTIVITY_FILES)
    )
    for name in sorted(names & set(_EMPTY_ACTIVITY_FILES) | {"inforef.xml"}):
        root_tag, children = _EMPTY_ACTIVITY_FILES[name]
        small_xml(d / name, root_tag, children)

    activities = info.find("contents/activities")
    if activities is not None:
        _add_record(activities, "activity", {}, [("moduleid", str(cmid)),
                    ("sectionid", sectionid or "0"), ("modulename", "forum"),
                    ("title", "Course discussion"), ("directory", rel)])  # fmt: skip
    settings = info.find("settings")
    if settings is not None:
        for suffix in ("included", "userinfo"):
            _add_record(settings, "setting", {}, [("level", "activity"), ("activity", f"forum_{cmid}"),
                        ("name", f"forum_{cmid}_{suffix}"), ("value", "1")])  # fmt: skip

    newest = max(state.orig_mtimes.values(), default=DIR_MTIME)
    entries: list[tuple[str, bool]] = [(rel + "/", True)]
    for name in _readdir_order(os.listdir(d)):
        entries.append((f"{rel}/{name}", False))
        state.orig_mtimes[f"{rel}/{name}"] = newest
    if not any(n == "activities/" for n, _ in state.order):
        entries.insert(0, ("activities/", True))
    last = max(
        (i for i, (n, _) in enumerate(state.order) if n.startswith("activities/")), default=-1
    )
    if last < 0:
        last = next((i for i, (n, _) in enumerate(state.order) if n == LOG_NAME), len(state.order))
        state.order[last:last] = entries
    else:
        state.order[last + 1 : last + 1] = entries


def _add_inforef_users(path: Path, userids: Sequence[int]) -> None:
    root = etree.parse(str(path), _XML_PARSER).getroot()
    ref = root.find("userref")
    if ref is None:
        ref = etree.Element("userref")
        root.insert(0, ref)
    have = {int(u.findtext("id") or 0) for u in ref.findall("user")}
    missing = [u for u in userids if u not in have]
    if not missing:
        return
    for user in missing:
        _add_record(ref, "user", {}, [("id", str(user))])
    _write_canonical(path, root)


def _corpus_message(seed: int, post_id: int, night: int = 0) -> str:
    pool = _corpus_pool(seed)
    return pool.message(sub_rng(seed, "corpus-post", post_id, night))


def _corpus_title(seed: int, disc_id: int) -> str:
    return _corpus_pool(seed).title(sub_rng(seed, "corpus-title", disc_id))


_POOLS: dict[int, TextPool] = {}


def _corpus_pool(seed: int) -> TextPool:
    if seed not in _POOLS:
        _POOLS[seed] = TextPool(seed, 1500)
    return _POOLS[seed]


def _corpus_backup_name(old: str, info: etree._Element, t: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(t))
    m = re.match(r"^(backup-moodle2-.+)-\d{8}-\d{4}(-nu)?\.mbz$", old)
    if m:
        return f"{m.group(1)}-{stamp}{m.group(2) or ''}.mbz"
    courseid = info.findtext("original_course_id") or "0"
    short = (info.findtext("original_course_shortname") or "course").strip().lower()
    short = re.sub(r"[^a-z0-9_.\-]+", "_", short)
    return f"backup-moodle2-course-{courseid}-{short}-{stamp}.mbz"


# --------------------------------------------------------------------------
# Public API


def _stats(
    out_path: Path, night: int, members: Sequence[Member], total: int, started: float
) -> dict[str, Any]:
    xml_bytes = sum(m.size for m in members if m.name.endswith(".xml"))
    return {
        "path": str(out_path),
        "night": night,
        "xml_bytes": xml_bytes,
        "total_bytes": total,
        "archive_bytes": out_path.stat().st_size,
        "members": len(members) + 1,  # + .ARCHIVE_INDEX
        "seconds": round(time.monotonic() - started, 2),
    }


def _stage_dir(out_path: Path) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="gen_course-", dir=out_path.parent)


def write_night(
    out_path: PathLike, night: int, xml_mb: float, seed: int, from_mbz: PathLike | None = None
) -> dict[str, Any]:
    """Write night ``night`` (1 = base) of the course as a .mbz at ``out_path``.

    Synthetic mode regenerates the night from (xml_mb, seed) alone, streaming;
    corpus mode (``from_mbz``) replays nights 2..night on the extracted archive.
    Returns stats: path, night, xml_bytes, total_bytes (uncompressed member
    contents, index included), archive_bytes, members (index included), seconds,
    and ``changes`` (what this night changed).
    """
    if night < 1:
        raise ValueError("nights are numbered from 1")
    started = time.monotonic()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _stage_dir(out) as tmp:
        stage = Path(tmp)
        if from_mbz is not None:
            state = open_corpus(Path(from_mbz), stage, seed)
            for n in range(2, night + 1):
                apply_corpus_night(state, n)
            members = corpus_members(state)
            changes: dict[str, int] = state.tonight
        else:
            plan = make_plan(xml_mb, seed)
            info = build_synthetic(stage, plan, night)
            members = staged_members(stage)
            changes = info["changes"]
        total = pack_mbz(members, out)
    stats = _stats(out, night, members, total, started)
    stats["changes"] = changes
    return stats


def write_nights(
    out_dir: PathLike, nights: int, xml_mb: float, seed: int, from_mbz: PathLike | None = None
) -> list[dict[str, Any]]:
    """Write night-01.mbz .. night-NN.mbz into ``out_dir`` (corpus mode: one extraction)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    if from_mbz is None:
        for n in range(1, nights + 1):
            results.append(write_night(out / f"night-{n:02d}.mbz", n, xml_mb, seed))
        return results
    with _stage_dir(out / "x") as tmp:
        state = open_corpus(Path(from_mbz), Path(tmp), seed)
        for n in range(1, nights + 1):
            started = time.monotonic()
            if n > 1:
                apply_corpus_night(state, n)
            members = corpus_members(state)
            path = out / f"night-{n:02d}.mbz"
            total = pack_mbz(members, path)
            stats = _stats(path, n, members, total, started)
            stats["changes"] = state.tonight if n > 1 else {}
            results.append(stats)
    return results


def write_base(
    out_dir: PathLike, xml_mb: float, seed: int, from_mbz: PathLike | None = None
) -> dict[str, Any]:
    """Night 1 (the base course) as ``out_dir/night-01.mbz``."""
    return write_night(Path(out_dir) / "night-01.mbz", 1, xml_mb, seed, from_mbz)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("base", "nights"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True, type=Path, help="output directory")
        p.add_argument(
            "--xml-mb", type=float, default=50.0, help="approximate uncompressed XML size (MB)"
        )
        p.add_argument("--seed", type=int, default=1)
        p.add_argument(
            "--from", dest="from_mbz", type=Path, help="start from this corpus .mbz instead"
        )
        if name == "nights":
            p.add_argument("--nights", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "base":
        results = [write_base(args.out, args.xml_mb, args.seed, args.from_mbz)]
    else:
        results = write_nights(args.out, args.nights, args.xml_mb, args.seed, args.from_mbz)
    for stats in results:
        print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
