"""`python -m market.api.export docs/openapi.json` (make openapi): write the API's OpenAPI
document, the same bytes every time, for client generators and for CI to check it is current."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def document_text() -> str:
    from market import create_app
    from market.api.docs import spec_dict

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/spec.db",
                "UPLOAD_DIR": folder,
                "SECRET_KEY": "openapi-export",
            }
        )
        with app.test_request_context():
            spec = spec_dict()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m market.api.export FILE", file=sys.stderr)
        return 1
    Path(argv[0]).write_text(document_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
