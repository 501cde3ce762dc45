"""``init --encrypt``'s companions: the key slots of an encrypted repository
(``key list|add|remove|passwd``), each opened with a passphrase it already has."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer

from coursevault import api
from coursevault.cli import output
from coursevault.cli.base import (
    JsonOpt,
    RepoOpt,
    app,
    current_password_given,
    env_passphrase,
    password,
    read_password_file,
    remote_options,
)

key_app = typer.Typer(
    help="Key slots of an encrypted repository: several passphrases open it.",
    no_args_is_help=True,
)
app.add_typer(key_app, name="key")

NewPasswordFile = Annotated[
    str | None,
    typer.Option("--new-password-file", help="File holding the new passphrase "
                 "(or COURSEVAULT_NEW_PASSWORD; asked on a terminal otherwise)."),
]


def new_password(path: str | None, *, or_current: bool = False) -> bytes:
    """The new passphrase of ``key add``/``key passwd`` and ``init --encrypt``.
    ``or_current`` (init, which has no current one to mistake for it): the
    current passphrase's sources (--password-file, COURSEVAULT_PASSWORD_FILE,
    COURSEVAULT_PASSWORD) serve too, as they always did for a script's init."""
    if path:
        return read_password_file(path)
    if "COURSEVAULT_NEW_PASSWORD" in os.environ:
        return env_passphrase("COURSEVAULT_NEW_PASSWORD")
    if or_current and current_password_given():
        return password()
    # asked on the terminal, never taken from where the current passphrase
    # comes from: with COURSEVAULT_PASSWORD_FILE set, `key passwd` took the
    # old one for the new (twice, so the check agreed) and changed nothing
    if not sys.stdin.isatty():
        raise api.UsageError("no new passphrase: give --new-password-file or "
                             "COURSEVAULT_NEW_PASSWORD, or run it on a terminal")
    first = getpass.getpass("new passphrase: ").encode()
    if getpass.getpass("new passphrase again: ").encode() != first:
        raise api.UsageError("the two passphrases differ")
    return first


@key_app.command("list")
def list_keys(repo: RepoOpt = "", json_out: JsonOpt = False) -> None:
    """The key slots: id, when made, the key derivation; * the one yours opens."""
    api.require_encrypted(repo, remote_options())
    slots = api.key_slots(repo, password(), remote_options())
    if json_out:
        output.print_json(slots)
        return
    for s in slots:
        kdf = s["kdf"]
        output.out.print(f"{'*' if s['current'] else ' '} {s['id']}  {s['created']}  "
                         f"{kdf['name']} {kdf['memory_kib'] // 1024} MiB x{kdf['iterations']}")


@key_app.command("add")
def add_key(new_password_file: NewPasswordFile = None, repo: RepoOpt = "",
            json_out: JsonOpt = False) -> None:
    """Add a passphrase: a new slot opening the same keys (no data rewritten)."""
    api.require_encrypted(repo, remote_options())
    current = password()
    slot = api.add_key(repo, current, new_password(new_password_file), remote_options())
    output.print_json({"added": slot}) if json_out else output.out.print(f"added key {slot}")


@key_app.command("remove")
def remove_key(
    slot: Annotated[str, typer.Argument(help="The slot's id, as `key list` shows it.")],
    repo: RepoOpt = "",
) -> None:
    """Remove a slot other than the one your passphrase opens."""
    api.require_encrypted(repo, remote_options())
    api.remove_key(repo, password(), slot, remote_options())
    output.out.print(f"removed key {slot}")


@key_app.command("passwd")
def change_password(new_password_file: NewPasswordFile = None, repo: RepoOpt = "",
                    json_out: JsonOpt = False) -> None:
    """Change your passphrase: its slot replaced by one the new passphrase opens."""
    api.require_encrypted(repo, remote_options())
    current = password()
    slot = api.change_key_password(repo, current, new_password(new_password_file),
                                   remote_options())
    output.print_json({"replaced_by": slot}) if json_out else output.out.print(
        f"passphrase changed (key {slot})")
