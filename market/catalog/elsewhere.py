"""Links from the product page to pages of the layers above (a presale of the product). Those
layers register them when their pages are loaded, so the catalog's pages name no page above
them (docs/ARCHITECTURE.md: a lower layer takes a registered callback; it never imports).
The product page is cached: a builder returns links that depend on the product's id alone, never
on data the page cache does not track. Templates call `product_links(product)`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

Link = tuple[str, str]  # (label, url)

_builders: list[Callable[[object], Iterable[Link]]] = []


def register(builder: Callable[[object], Iterable[Link]]) -> None:
    """Add `builder(product) -> [(label, url), ...]` to the product page."""
    if builder not in _builders:
        _builders.append(builder)


def product_links(product: object) -> list[Link]:
    """Every registered link for the product, in the order they were registered."""
    return [link for builder in _builders for link in builder(product)]
