"""`Html`: an HTML document (a string, a file path or a file object), stored as an `.html` run file."""

from __future__ import annotations

import os
from typing import Any

from branchline.sdk.media.base import Media, check_bytes, read_file, short

__all__ = ["Html"]


class Html(Media):
    """HTML logged as a run file with an `html-file` descriptor (shown sandboxed, never as our origin)."""

    kind = "html"

    def __init__(self, data: Any, inject: bool = True) -> None:
        if isinstance(data, os.PathLike) or (
            isinstance(data, str) and data.endswith((".html", ".htm")) and os.path.isfile(data)
        ):
            self.html = read_file(data, "Html").decode("utf-8", errors="replace")
        elif isinstance(data, str):
            self.html = data
        elif hasattr(data, "read"):
            text = data.read()
            self.html = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
        else:
            raise TypeError(f"Html: expected an HTML string, a file path or a file object, got {short(data)}.")
        self.inject = bool(inject)
        check_bytes(len(self.html), "Html: the document")

    def payload(self) -> dict[str, Any]:
        return {"file": self.html.encode("utf-8")}

    def __repr__(self) -> str:
        return f"<Html {len(self.html)} characters>"
