"""One course's backup from a Moodle database, as members.

Checks the site is a Moodle this code knows, reads the course, builds the
plan and the content transformer from the registered definitions, and hands
back the members in Moodle's order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus

from coursevault.definitions.course_plan import course_plan
from coursevault.definitions.links import encode_filephp_links
from coursevault.errors import SiteDataError, SiteError
from coursevault.moodle2.xmlwriter import Transformer
from coursevault.moodledb.site import SiteReader
from coursevault.structure import registry
from coursevault.structure.context import (
    BackupRun,
    SiteInfo,
    resolve_settings,
    site_default_settings,
)
from coursevault.structure.engine import Encrypt
from coursevault.structure.plan import Member, MemberSpool, Progress, execute
from coursevault.structure.pluginguard import PluginError

# Moodle 4.5.x: what the definitions were read from and checked against
SUPPORTED = ("2024100700", "2024100800")
SUPPORTED_TEXT = "Moodle 4.5 (version 2024100700 to 2024100799)"


def check_version(version: str | None, release: str | None) -> None:
    """SiteError unless ``version`` (the config table's) is one the
    definitions were read from: backup and restore both write Moodle 4.5's
    tables, whatever the release string says."""
    if version is None:
        raise SiteError("no Moodle version in the config table: not a Moodle database?")
    if not SUPPORTED[0] <= version.split(".")[0] < SUPPORTED[1]:
        raise SiteError(f"Moodle version {version} ({release}) is not supported: "
                        f"the definitions are for {SUPPORTED_TEXT}")


def site_info(reader: SiteReader) -> SiteInfo:
    """The site's identity, or SiteError if this is not a Moodle we know."""
    names = ("version", "release", "siteidentifier", "backup_version", "backup_release",
             "mnet_localhost_id")
    config = {r["name"]: r["value"] for r in reader.rows("config", {"name": list(names)})}
    version = config.get("version")
    check_version(version, config.get("release"))
    assert version is not None  # check_version refused a site without one
    host = reader.one("mnet_host", {"id": config.get("mnet_localhost_id") or "1"})
    # the backup plugin's settings: its key here, its defaults in start_run
    backup = {str(r["name"]): r["value"] for r in reader.rows(
        "config_plugins", {"plugin": "backup"}, columns=("name", "value"))}
    return SiteInfo(
        wwwroot=str(host["wwwroot"]) if host else "",
        siteidentifier=config.get("siteidentifier") or "",
        version=version,
        release=config.get("release") or "",
        backup_version=config.get("backup_version") or "",
        backup_release=config.get("backup_release") or "",
        backup_key=backup.get("backup_encryptkey"),
        backup_config=backup,
    )


def start_run(
    reader: SiteReader, courseid: int | str, settings: dict[str, bool] | None = None
) -> BackupRun:
    site = site_info(reader)
    course = reader.one("course", {"id": str(courseid)})
    if course is None or str(courseid) == "1":
        raise SiteDataError(f"course {courseid}: no such course in the database")
    merged = resolve_settings(site_default_settings(reader, site.backup_config), settings or {})
    return BackupRun(reader, site, merged, course, started=int(time.time()))


def course_members(
    run: BackupRun, progress: Progress | None = None, spool: MemberSpool | None = None
) -> Iterator[Member]:
    """The members of the course's backup, in Moodle's order (written into
    ``spool``, if given, as plan.execute says)."""
    tasks = course_plan(run)
    return execute(tasks, run, transform=transformer(run), encrypt=encrypter(run),
                   progress=progress, spool=spool)


def transformer(run: BackupRun) -> Transformer:
    """Moodle's backup_xml_transformer: file.php links, then every encoder
    (course first, then activities and blocks by name)."""
    link = registry.LinkContext(run.site.wwwroot, str(run.course["id"]), run)
    from coursevault.definitions import course_task

    first = getattr(course_task, "encode_links", None)
    slots = [_EncoderSlot(None, "", first)] if first is not None else []
    run.warnings.extend(registry.conflicts())
    for group in (registry.activities(), registry.blocks()):
        for name in group:
            try:
                slots.append(_EncoderSlot(group, name))
            except PluginError as exc:  # the course fails only if it holds the module
                run.warnings.append(f"{exc}: its links are not encoded")

    # coursevault's own encoders only rewrite links holding the site's
    # address (after its scheme: http and https forms both count), plain or
    # urlencoded (the course's pluginfile links): text holding neither is
    # left as it is without running their few hundred patterns -- or
    # importing the definitions of modules the course does not hold.
    # Another package's encoder always runs, and may add the address.
    rest = run.site.wwwroot.split("://", 1)[-1]
    needles = (rest, quote_plus(rest, safe="").replace("~", "%7E"))

    def transform(content: str) -> str:
        content = encode_filephp_links(content, link)
        linked = any(n in content for n in needles)
        for slot in slots:
            if slot.ours and not linked:
                continue
            encode = slot.encoder()
            if encode is None:
                continue
            content = encode(content, link)
            if not slot.ours:
                linked = any(n in content for n in needles)
        return content

    return transform


class _EncoderSlot:
    """One plugin's place in the transformer's order.  A coursevault
    definition (known by its entry point's module) is imported when text
    first needs its encoder; another package's is loaded now, and counts as
    coursevault's own only if its encoder comes from coursevault's
    definitions, as the loaded function says."""

    def __init__(self, group: Mapping[str, Any] | None, name: str, encode: Any = None) -> None:
        self._group, self._name = group, name
        self._encode: Any = encode
        self._loaded = group is None
        # any other mapping of plugins (a test's) is loaded already
        lazy = isinstance(group, registry.PluginGroup) and group.module(name).startswith(_OWN)
        self.ours = group is None or lazy
        if not self.ours:
            self.encoder()
            self.ours = str(getattr(self._encode, "__module__", "")).startswith(_OWN)

    def encoder(self) -> Callable[[str, registry.LinkContext], str] | None:
        if not self._loaded and self._group is not None:
            self._encode = self._group[self._name].encode_links
            self._loaded = True
        return self._encode  # type: ignore[no-any-return]


_OWN = "coursevault.definitions."


def encrypter(run: BackupRun) -> Encrypt:
    """``encrypted_final_element``: base64(HMAC-SHA256 ‖ IV ‖ AES-256-CBC).

    A site that never made a backup has no key yet: Moodle would make one and
    save it in its config, which this backup never does (it does not write
    the database).  A one-off key is used instead, and the run says that
    those values cannot be decrypted by any site."""
    warned = False
    key = base64.b64decode(run.site.backup_key) if run.site.backup_key else os.urandom(32)

    def encrypt(value: str) -> str:
        # imported on the first encrypted value (LTI secrets): most courses
        # have none, and the library is ~8 MB of the backup's memory
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        nonlocal warned
        if not run.site.backup_key and not warned:
            warned = True
            run.warnings.append(
                "the site has no backup key (config_plugins backup/backup_encryptkey) yet: "
                "encrypted values (e.g. LTI secrets) are written under a one-off key no "
                "site can decrypt")
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        data = padder.update(value.encode("utf-8")) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = iv + enc.update(data) + enc.finalize()
        mac = hmac.new(key, body, hashlib.sha256).digest()
        return base64.b64encode(mac + body).decode("ascii")

    return encrypt
