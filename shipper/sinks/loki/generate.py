"""Regenerate push_pb2.py and its type stub push_pb2.pyi from push.proto (needs grpcio-tools, a
dev-only tool):

    python -m shipper.sinks.loki.generate

equivalent to, from the project root: python -m grpc_tools.protoc -I . -I <grpc_tools>/_proto
--python_out=. --pyi_out=. shipper/sinks/loki/push.proto
(the proto is registered as "shipper/sinks/loki/push.proto" so it cannot clash with another
"push.proto" in the process-wide descriptor pool).
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def main() -> int:
    from grpc_tools import protoc  # dev-only dependency, imported lazily

    well_known = resources.files("grpc_tools") / "_proto"
    outputs = [f"--python_out={ROOT}", f"--pyi_out={ROOT}"]
    return int(protoc.main(["protoc", f"-I{ROOT}", f"-I{well_known}", *outputs, str(HERE / "push.proto")]))


if __name__ == "__main__":
    sys.exit(main())
