"""DVC as the version store: snapshot a directory into the cache, push it, restore it by hash.

Each dataset version is a DVC directory object (`<md5>.dir`) in the repository's cache and
its remote. Recording that hash in the catalog is enough to bring the exact bytes of any
version back later, from the cache or, when the cache is gone too, from the remote.

These calls use DVC's object store directly instead of `dvc add`/`dvc push` commands, so
they also work inside a `dvc repro` stage, which holds the repository lock.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.errors import PowerOpsError

if TYPE_CHECKING:
    from dvc.data_cloud import Remote
    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

log = logging.getLogger(__name__)


class VersionStoreError(PowerOpsError):
    """A snapshot could not be stored, pushed or restored."""


def _repo(root: Path) -> Repo:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root.resolve()))
    except NotDvcRepoError:
        raise VersionStoreError(
            f"{root} is not a DVC repository (run `dvc init` there, or use a copy of powerops)"
        ) from None


def snapshot(root: Path, directory: Path) -> str:
    """Store `directory` in the DVC cache; return its DVC hash (`<md5>.dir`)."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.transfer import transfer

    repo = _repo(root)
    try:
        cache = repo.cache.local
        staging, _, obj = build(
            cache, str(directory.resolve()), repo.fs, "md5", ignore=repo.dvcignore
        )
        transfer(staging, cache, {obj.hash_info}, shallow=False, hardlink=False)
        value = obj.hash_info.value
        assert isinstance(value, str)
        return value
    finally:
        repo.close()


def push(root: Path, dvc_md5: str) -> int:
    """Push one snapshot (directory object and files) to the default remote; return files sent."""
    from dvc.config import NoRemoteError
    from dvc_data.hashfile.hash_info import HashInfo

    repo = _repo(root)
    try:
        tree = _load_tree(repo.cache.local, HashInfo("md5", dvc_md5))
        if tree is None:
            raise VersionStoreError(f"snapshot {dvc_md5} is not in the DVC cache; nothing to push")
        result = repo.cloud.push(_objects(tree))
    except NoRemoteError:
        raise VersionStoreError(
            f"{root}: no default DVC remote; add one with `dvc remote add -d NAME URL`"
        ) from None
    finally:
        repo.close()
    if result.failed:
        raise VersionStoreError(f"push of {dvc_md5} failed for {len(result.failed)} object(s)")
    return len(result.transferred)


def restore(root: Path, dvc_md5: str, target: Path) -> None:
    """Write the snapshot `dvc_md5` to `target`, replacing it whole and atomically.

    Objects come from the local cache; whatever is missing there is fetched from the
    default remote first.
    """
    from dvc_data.hashfile.checkout import checkout
    from dvc_data.hashfile.hash_info import HashInfo

    repo = _repo(root)
    try:
        cache = repo.cache.local
        hash_info = HashInfo("md5", dvc_md5)
        tree = _load_tree(cache, hash_info)
        missing = tree is None or any(not cache.exists(entry.value) for _key, _meta, entry in tree)
        if missing:
            log.info("fetching snapshot %s from the DVC remote", dvc_md5)
            repo.cloud.pull([hash_info])  # the directory object first: it lists the files
            tree = _load_tree(cache, hash_info)
            if tree is None:
                raise VersionStoreError(
                    f"snapshot {dvc_md5} is neither in the DVC cache nor on the remote"
                )
            result = repo.cloud.pull(_objects(tree))
            if result.failed:
                raise VersionStoreError(
                    f"snapshot {dvc_md5}: {len(result.failed)} file(s) are neither in the DVC "
                    "cache nor on the remote"
                )
        staging = target.with_name(f".{target.name}.restore")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        # "copy" links: a restored file must be an independent, byte-identical file.
        assert tree is not None
        checkout(str(staging.resolve()), repo.fs, tree, cache, force=True, quiet=True)
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        repo.close()


def newest_remote_file(root: Path, folder: str) -> tuple[str, bytes] | None:
    """The last by name of the files in `folder` at the root of the default remote, with its
    content (None if there is none). Only that one file is read."""
    repo = _repo(root)
    try:
        remote = _remote(repo, root)
        path = remote.fs.join(remote.path, folder)
        if not remote.fs.exists(path):
            return None
        names = [remote.fs.name(entry) for entry in remote.fs.ls(path, detail=False)]
        names = [name for name in names if not name.startswith(".")]  # partial writes
        if not names:
            return None
        newest = max(names)
        return newest, remote.fs.cat_file(remote.fs.join(path, newest))
    finally:
        repo.close()


def create_remote_file(root: Path, folder: str, name: str, data: bytes) -> bool:
    """Create `folder/name` at the root of the default remote; False if it exists already.

    A compare-and-set: of writers creating the same name at once, exactly one succeeds and the
    others get False, which is what makes `folder` usable as an append-only log (the shared
    state's heads). The bytes go to a temporary name first, so no reader sees part of them,
    then get the final name by an operation that refuses an existing one: a check before a
    move would let two writers both pass the check, and the second move replace the first.
    Local-path and ssh:// remotes only; on any other, VersionStoreError.
    """
    repo = _repo(root)
    try:
        remote = _remote(repo, root)
        protocol = remote.fs.protocol
        if protocol == "local":
            return _create_local(remote, folder, name, data)
        if protocol == "ssh":
            return _create_sftp(remote, folder, name, data)
        raise VersionStoreError(
            f"DVC remote `{remote.name}` is {protocol}://, where powerops cannot yet create a "
            "file that refuses an existing name; `state.shared` needs a local-path or ssh:// "
            "DVC remote for now"
        )
    finally:
        repo.close()


def _create_local(remote: Remote, folder: str, name: str, data: bytes) -> bool:
    directory = Path(remote.path) / folder
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return _link_new(directory / _partial(name), directory / name, data)
    except OSError as exc:
        raise _not_created(remote, folder, name, exc) from exc


def _link_new(partial: Path, path: Path, data: bytes) -> bool:
    """Write `data` to `partial` and link it as `path`: link(2) refuses an existing name."""
    try:
        with open(partial, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def _create_sftp(remote: Remote, folder: str, name: str, data: bytes) -> bool:
    """`create_remote_file` over SFTP, on the connection pool and event loop of DVC's sshfs."""
    import asyncssh
    from fsspec.asyn import sync

    sshfs = remote.fs.fs
    directory = remote.fs.join(remote.path, folder)
    try:
        created = sync(sshfs.loop, _sftp_link_new, sshfs, directory, name, data)
    except (OSError, asyncssh.Error) as exc:
        raise _not_created(remote, folder, name, exc) from exc
    assert isinstance(created, bool)
    return created


async def _sftp_link_new(sshfs: Any, directory: str, name: str, data: bytes) -> bool:
    # OpenSSH's hardlink@openssh.com is link(2) on the server, which refuses an existing name
    # on any filesystem. Its plain SFTP rename also links, but falls back to a check and a
    # rename where the filesystem has no hard links; a server without the extension fails
    # here ("link not supported") rather than racing.
    import asyncssh

    partial, path = f"{directory}/{_partial(name)}", f"{directory}/{name}"
    async with sshfs._pool.get() as sftp:
        await sftp.makedirs(directory, exist_ok=True)
        try:
            async with sftp.open(partial, "xb") as handle:
                await handle.write(data)
            await sftp.link(partial, path)
        except asyncssh.SFTPError:
            # SFTP v3 has no status for "already exists" (OpenSSH says "Failure"), so ask.
            if await sftp.lexists(path):
                return False
            raise
        finally:
            if await sftp.lexists(partial):
                await sftp.remove(partial)
    return True


def _partial(name: str) -> str:
    """A temporary name beside `name`; the leading dot makes readers skip it."""
    return f".{name}.{uuid.uuid4().hex}"


def _not_created(remote: Remote, folder: str, name: str, exc: Exception) -> VersionStoreError:
    where = remote.fs.unstrip_protocol(remote.path)
    return VersionStoreError(
        f"DVC remote `{remote.name}` ({where}): could not create {folder}/{name}: {exc}"
    )


def _remote(repo: Repo, root: Path) -> Remote:
    from dvc.config import NoRemoteError

    try:
        return repo.cloud.get_remote()
    except NoRemoteError:
        raise VersionStoreError(
            f"{root}: no default DVC remote; add one with `dvc remote add -d NAME URL`"
        ) from None


def _load_tree(cache: HashFileDB, hash_info: HashInfo) -> Tree | None:
    from dvc_data.hashfile.tree import Tree

    try:
        return Tree.load(cache, hash_info)
    except (FileNotFoundError, ValueError):
        return None


def _objects(tree: Tree) -> list[HashInfo]:
    """The directory object and every file object it lists."""
    assert tree.hash_info is not None
    return [tree.hash_info, *(entry for _key, _meta, entry in tree)]
