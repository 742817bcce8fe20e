"""One file of a repository through GitHub's contents API, over the REST client.

The client answers rate limits, ``Retry-After`` and errors as for every other
request; these two calls only shape the contents API's requests and answers.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from .api import GitHubClient, GitHubError


@dataclass(frozen=True)
class RemoteFile:
    """A file as the contents API gives it."""

    sha: str  # the blob's: an update names it
    content: bytes | None  # None: too large for the API to inline


def _path(repo: str, path: str) -> str:
    owner, _, name = repo.partition("/")
    return f"/repos/{quote(owner)}/{quote(name)}/contents/{quote(path, safe='/')}"


async def read_file(client: GitHubClient, repo: str, path: str, *, ref: str) -> RemoteFile | None:
    """``path`` in ``repo`` (``owner/name``) on ``ref``; None when GitHub answers 404,
    which is also what a missing repository or branch looks like (a write then says
    so). GitHubError for any other failure, or for a path that is not a file."""
    rsp = await client.get(_path(repo, path), {"ref": ref}, cache=False)
    if rsp.status == 404:
        return None
    if not rsp.ok:
        raise client.error(rsp)
    body = rsp.body
    if not isinstance(body, dict) or not isinstance(body.get("sha"), str):
        raise GitHubError(f"{path} is not a file in {repo}", status=rsp.status)
    raw = body.get("content") if body.get("encoding") == "base64" else None
    try:
        # b64decode drops the line breaks GitHub wraps the content with.
        content = base64.b64decode(raw) if isinstance(raw, str) else None
    except binascii.Error as exc:
        raise GitHubError(f"{path} in {repo}: content not base64", status=rsp.status) from exc
    return RemoteFile(body["sha"], content)


async def put_file(
    client: GitHubClient,
    repo: str,
    path: str,
    content: bytes,
    *,
    message: str,
    branch: str,
    sha: str | None,
) -> int:
    """Create (``sha`` None) or update ``path`` in one commit; the status, 201 or 200.

    GitHubError otherwise: 409 or 422 when ``sha`` is no longer the file's.
    """
    payload = {
        "message": message,
        "content": base64.b64encode(content).decode("ascii"),
        "branch": branch,
    }
    if sha is not None:
        payload["sha"] = sha
    rsp = await client.put(_path(repo, path), json=payload)
    if rsp.status not in (200, 201):
        raise client.error(rsp)
    return rsp.status
