"""Response classes the routes share."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    """JSON via orjson: a 1,000-line page encodes several times faster than with json.dumps."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
