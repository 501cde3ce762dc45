"""What every command shares: the typer apps, the common options, opening a repository.

Only the CLI reads the environment (through typer's ``envvar``, and the XDG
cache folder here); everything below it takes explicit arguments.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coursevault import api

if TYPE_CHECKING:  # typer's vendored click: the class of every context, the root's too
    from typer._click.core import Context

app = typer.Typer(
    name="coursevault",
    help="Incremental, deduplicated history of Moodle course backups.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
index_app = typer.Typer(
    help="Maintain the local catalog of the repository index.", no_args_is_help=True
)
app.add_typer(index_app, name="index")
repair_app = typer.Typer(
    help="Rebuild what a damaged repository file held from the files that hold it too.",
    no_args_is_help=True,
)
app.add_typer(repair_app, name="repair")


def _or_before_command(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """The value of a common option, which may also be given before the command.

    ``coursevault -r REPO ls ...`` and ``coursevault ls -r REPO ...`` mean the
    same (the README tells users to pass ``-r`` to every command, and both
    orders are usual).  The command's own option on the command line wins, as
    the nearer one; then the one before the command; then the environment
    variable and the default, which only the command's option reads.
    """
    name = param.name or ""
    if _given(ctx, name):
        return value
    root = ctx.find_root()
    if root is not ctx and _given(root, name):
        return root.params[name]
    return value


def _given(ctx: Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


# Moodle's ids are BIGINT: a larger one was 'bigint out of range' (exit 13)
# on PostgreSQL and an internal OverflowError on SQLite
ID_MAX = 2**63 - 1

RepoOpt = Annotated[
    str,
    typer.Option(
        "--repo",
        "-r",
        envvar="COURSEVAULT_REPO",
        help="Repository folder.",
        callback=_or_before_command,
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        envvar="COURSEVAULT_CACHE",
        help="Folder for local caches (catalog; default ~/.cache/coursevault).",
        callback=_or_before_command,
    ),
]
CatalogOpt = Annotated[
    str | None,
    typer.Option(
        "--catalog",
        envvar="COURSEVAULT_CATALOG",
        help="SQLAlchemy URL of the catalog database instead of the local SQLite cache.",
        callback=_or_before_command,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Machine-readable JSON output.", callback=_or_before_command),
]


WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="[=SECONDS]",
        show_default=False,
        help="If the repository is locked, wait for the lock (up to SECONDS; --wait "
        "alone: as long as it takes) instead of failing with exit 11.",
    ),
]

NO_LOCK_HELP = (
    "Read the repository without locking it, for a repository this host may only read "
    "(read-only mount or credentials, object lock).  A prune elsewhere meanwhile makes "
    "the command fail; it never reads wrong data."
)
NoLockOpt = Annotated[
    bool, typer.Option("--no-lock", help=NO_LOCK_HELP, callback=_or_before_command)
]


def cache_dir_for(cache_dir: str | None) -> str | None:
    if cache_dir:
        return cache_dir
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg, "coursevault") if xdg else None


def read_password_file(path: str) -> bytes:
    """A passphrase kept in a file (its one line, without the line break)."""
    try:
        with open(path, "rb") as f:
            return f.read().rstrip(b"\r\n")
    except OSError as exc:
        raise api.UsageError(f"cannot read the passphrase file {path}: {exc.strerror}") from None


def env_passphrase(name: str) -> bytes:
    """A passphrase from the environment, as UTF-8 -- what a terminal's is
    too, and what every earlier version used; a variable whose bytes are
    not valid in the locale (Python keeps them as surrogates, and .encode()
    failed with an internal error) is taken as its bytes."""
    text = os.environ[name]
    try:
        return text.encode()
    except UnicodeEncodeError:
        return os.fsencode(text)


def current_password_given() -> bool:
    """Whether :func:`password` would find a passphrase without asking."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    given = ctx.find_root().params.get("password_file") if ctx is not None else None
    return bool(given or os.environ.get("COURSEVAULT_PASSWORD_FILE")
                or "COURSEVAULT_PASSWORD" in os.environ)


def password(prompt: str = "passphrase") -> bytes:
    """An encrypted repository's passphrase: --password-file, then
    COURSEVAULT_PASSWORD_FILE, COURSEVAULT_PASSWORD, then asked on the
    terminal; asked for only when the repository is encrypted."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    given = ctx.find_root().params.get("password_file") if ctx is not None else None
    path = given or os.environ.get("COURSEVAULT_PASSWORD_FILE")
    if path:
        return read_password_file(path)
    if "COURSEVAULT_PASSWORD" in os.environ:
        return env_passphrase("COURSEVAULT_PASSWORD")
    if not sys.stdin.isatty():
        raise api.WrongPasswordError(
            "the repository is encrypted: give its passphrase (--password-file, "
            "COURSEVAULT_PASSWORD_FILE or COURSEVAULT_PASSWORD)")
    return getpass.getpass(f"{prompt}: ").encode()


def remote_options() -> api.RemoteOptions:
    """The root options for s3:// repositories (``--endpoint-url``,
    ``--s3-connections``, given before the command or by environment)."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    params = ctx.find_root().params if ctx is not None else {}
    return api.RemoteOptions(
        endpoint_url=params.get("endpoint_url") or None,
        connections=(api.S3_CONNECTIONS if params.get("s3_connections") is None
                     else params["s3_connections"]),  # 0 was taken for the default
        timeout=(api.S3_TIMEOUT if params.get("s3_timeout") is None
                 else params["s3_timeout"]),
    )


def location_label(location: str) -> str:
    """A location as messages show it: a folder's absolute path, a URL as given."""
    return location if "://" in location else os.path.abspath(location)


def open_repo(
    repo: str,
    cache_dir: str | None,
    catalog: str | None,
    *,
    sync: bool = True,
    wait: float = 0.0,
    no_lock: bool = False,
) -> api.Repository:
    """The repository, opened with the common options.  ``--no-lock`` before
    any command reaches it too, so a command that writes refuses it."""
    opened = api.open_repository(
        repo,
        cache_dir=cache_dir_for(cache_dir),
        catalog_url=catalog,
        sync=sync,
        lock_wait=wait,
        remote=remote_options(),
        password=password,
    )
    opened.no_lock = no_lock or root_no_lock()
    print_notices(opened)
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is not None:  # and what it noticed while the command ran (a cached copy dropped)
        ctx.call_on_close(lambda: print_notices(opened))
    return opened


def root_no_lock() -> bool:
    """Whether ``--no-lock`` came before the command."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("no_lock"))


def print_notices(repo: api.Repository) -> None:
    """What the repository noticed and worked around (a stray file, a damaged
    index file skipped, a catalog rebuilt), as warnings on stderr."""
    from coursevault.cli import output

    for message in repo.notices:
        output.error(message, "warning")
    repo.notices.clear()


def optional_wait_value(args: list[str]) -> list[str]:
    """``--wait`` alone means "as long as it takes": ``--wait=inf`` for the parser.

    As for GNU options with an optional value, a value must be attached
    (``--wait=600``): ``ingest --wait night.mbz`` waits, it does not take the
    archive for a number of seconds.
    """
    if "--" in args:
        end = args.index("--")
        return optional_wait_value(args[:end]) + args[end:]
    return ["--wait=inf" if a == "--wait" else a for a in args]


@app.callback()
def _main(
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo", "-r", help="Repository folder, for any command (or COURSEVAULT_REPO)."
        ),
    ] = None,
    cache_dir: Annotated[
        str | None, typer.Option("--cache-dir", help="Folder for local caches, for any command.")
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option("--catalog", help="SQLAlchemy URL of the catalog, for any command."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine-readable output, for commands that have it.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            envvar="COURSEVAULT_S3_ENDPOINT",
            help="Endpoint of an S3-compatible service for s3:// repositories (default: AWS).",
        ),
    ] = None,
    s3_connections: Annotated[
        int,
        typer.Option(
            "--s3-connections",
            envvar="COURSEVAULT_S3_CONNECTIONS",
            help="Requests in flight at once to an s3:// repository.",
        ),
    ] = api.S3_CONNECTIONS,
    s3_timeout: Annotated[
        float,
        typer.Option(
            "--s3-timeout",
            envvar="COURSEVAULT_S3_TIMEOUT",
            help="Seconds a request to an s3:// repository waits for the service before it "
            "is tried again (4 tries).",
        ),
    ] = api.S3_TIMEOUT,
    password_file: Annotated[
        str | None,
        typer.Option("--password-file", help="File holding an encrypted repository's "
                     "passphrase (or COURSEVAULT_PASSWORD_FILE, COURSEVAULT_PASSWORD)."),
    ] = None,
    no_lock: Annotated[bool, typer.Option("--no-lock", help=NO_LOCK_HELP)] = False,
) -> None:
    """Incremental, deduplicated history of Moodle course backups.

    The common options may come before the command as well as after it; the
    commands read them from here (see ``_or_before_command``).
    """
