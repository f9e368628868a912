"""Stand-ins for the scans co-ops upload (inspection reports, certificates) in the demo data."""

from __future__ import annotations

import io

from werkzeug.datastructures import FileStorage

from market.uploads import store_private_document


def store_demo_pdf(title: str, folder: str) -> str:
    """Store a one-page PDF saying it is an example (its text in ASCII) as a private document
    in `folder`, through the same content check as an upload; return its stored path."""
    text = f"{title.encode('ascii', 'ignore').decode()} (example only)"
    content = f"BT /F1 14 Tf 40 780 Td ({text}) Tj ET".encode()
    pdf = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
        b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
        b"4 0 obj<</Length " + str(len(content)).encode() + b">>stream\n" + content + b"\n"
        b"endstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    return store_private_document(FileStorage(io.BytesIO(pdf), filename=f"{folder}.pdf"), folder)
