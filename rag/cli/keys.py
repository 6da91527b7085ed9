"""``rag keys``: make, list and revoke the API keys that reach private collections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rag import terminal
from rag.cli.common import base_settings, catalog, config_option, data_option, json_option


@click.group("keys", help="API keys scoped to collections (stored hashed under RAG_DATA_DIR)")
def keys_group() -> None:
    """The ``rag keys`` group."""


@keys_group.command("create", help="make a key and print it once")
@click.option(
    "--collection",
    "collections",
    metavar="NAME",
    multiple=True,
    help="a collection the key reaches (repeatable)",
)
@click.option("--name", required=True, metavar="LABEL", help="who or what the key is for")
@click.option("--admin", is_flag=True, help="reach every collection and /admin")
@click.option("--upload", is_flag=True, help="may also add and delete documents")
@data_option
@config_option
@json_option
def create_command(
    collections: tuple[str, ...],
    name: str,
    admin: bool,
    upload: bool,
    data_dir: Path | None,
    as_json: bool,
) -> int:
    """Make a key; the plain key is printed once and never stored."""
    from rag.keys import KeyStore

    if not collections and not admin:
        raise click.UsageError("name at least one --collection, or make an --admin key")
    if not name.strip():
        raise click.UsageError("argument --name: must not be blank")
    base = base_settings(data_dir=data_dir)
    known = catalog(base).collections
    unknown = [c for c in collections if c not in known]
    if unknown:
        raise click.UsageError(
            f"argument --collection: no collection called {unknown[0]!r} "
            f"(this configuration has {', '.join(sorted(known))})"
        )
    info, key = KeyStore(base.data_dir).create(
        name.strip(), collections, admin=admin, upload=upload
    )
    shown = {"id": info.id, "key": key, "collections": list(info.collections)}
    if as_json:
        terminal.print_json({**shown, "name": info.name, "admin": admin, "upload": upload})
        return 0
    scope = "every collection" if admin else ", ".join(info.collections)
    click.echo(f"Key {info.id} ({info.name}) for {scope}; it is shown once, store it now:")
    click.echo(key)
    return 0


@keys_group.command("list", help="every key, without its secret")
@data_option
@json_option
def list_command(data_dir: Path | None, as_json: bool) -> int:
    """List the keys: id, name, collections, when made, last used, revoked."""
    from rag.keys import KeyStore

    keys = [k.to_dict() for k in KeyStore(base_settings(data_dir=data_dir).data_dir).list()]
    if as_json:
        terminal.print_json({"keys": keys})
        return 0
    if not keys:
        click.echo("No keys yet: make one with `rag keys create`.")
    for k in keys:
        click.echo(_line(k))
    return 0


@keys_group.command("revoke", help="stop a key working, from now on")
@click.argument("key_id", metavar="ID")
@data_option
@json_option
def revoke_command(key_id: str, data_dir: Path | None, as_json: bool) -> int:
    """Revoke a key by its id (KeyNotFound, exit 2, for an unknown one)."""
    from rag.keys import KeyStore

    info = KeyStore(base_settings(data_dir=data_dir).data_dir).revoke(key_id)
    if as_json:
        terminal.print_json(info.to_dict())
    else:
        click.echo(f"Revoked key {info.id} ({info.name}).")
    return 0


def _line(k: dict[str, Any]) -> str:
    scope = "admin" if k["admin"] else ", ".join(k["collections"])
    used = k["last_used_at"] or "never used"
    state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "live"
    upload = ", upload" if k["upload"] else ""
    return f"{k['id']}  {k['name']}  [{scope}{upload}]  made {k['created_at']}, {used}, {state}"
