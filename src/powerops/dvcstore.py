"""DVC as the version store: snapshot a directory into the cache, push it, restore it by hash.

Each dataset version is a DVC directory object (`<md5>.dir`) in the repository's cache and
its remote. Recording that hash in the catalog is enough to bring the exact bytes of any
version back later, from the cache or, when the cache is gone too, from the remote.

These calls use DVC's object store directly instead of `dvc add`/`dvc push` commands, so
they also work inside a `dvc repro` stage, which holds the repository lock.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc.data_cloud import Remote
    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

log = logging.getLogger(__name__)


class VersionStoreError(RuntimeError):
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

    Written to a temporary name and then moved, so a reader never sees part of it. A file is
    never replaced, which is what makes it usable as the next entry of an append-only log.
    """
    import uuid

    repo = _repo(root)
    try:
        remote = _remote(repo, root)
        directory = remote.fs.join(remote.path, folder)
        remote.fs.makedirs(directory, exist_ok=True)
        path = remote.fs.join(directory, name)
        if remote.fs.exists(path):
            return False
        partial = remote.fs.join(directory, f".{name}.{uuid.uuid4().hex}")
        remote.fs.pipe_file(partial, data)
        remote.fs.mv(partial, path)
        return True
    finally:
        repo.close()


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
