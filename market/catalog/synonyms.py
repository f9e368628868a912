"""Search synonyms (同义词): groups of names people use for the same thing, kept by the organizer
(红薯 番薯 地瓜; 荔枝 妃子笑 桂味 糯米糍). A search word that is one of a group's terms matches
products named with any term of that group."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select

from market.catalog.models import SearchSynonym
from market.errors import DomainError, NotFound
from market.extensions import db
from market.models import contains

MAX_TERMS = 12  # per group, and per expanded search word
MAX_TERM_LENGTH = 20
SEPARATORS = re.compile(r"[\s,，、;；/]+")


def parse_terms(text: str) -> list[str]:
    """ "红薯，番薯 地瓜" -> ["红薯", "番薯", "地瓜"]: split on spaces and commas, duplicates
    dropped, at least two terms."""
    terms = list(dict.fromkeys(t for t in SEPARATORS.split(text or "") if t))
    if len(terms) < 2:
        raise DomainError(_("一组同义词至少要有两个词"), field="terms")
    if len(terms) > MAX_TERMS:
        raise DomainError(_("一组同义词最多 %(n)d 个词", n=MAX_TERMS), field="terms")
    for term in terms:
        if len(term) > MAX_TERM_LENGTH:
            raise DomainError(
                _("“%(term)s”太长，每个词最多 %(n)d 个字", term=term[:30], n=MAX_TERM_LENGTH),
                field="terms",
            )
    return terms


def groups() -> list[SearchSynonym]:
    return list(db.session.scalars(select(SearchSynonym).order_by(SearchSynonym.id)))


def group_or_404(group_id: int) -> SearchSynonym:
    group = db.session.get(SearchSynonym, group_id)
    if group is None:
        raise NotFound(_("找不到这组同义词"))
    return group


def _groups_with(term: str) -> list[SearchSynonym]:
    candidates = db.session.scalars(
        select(SearchSynonym).where(contains(SearchSynonym.terms, term))
    )
    return [group for group in candidates if term in group.term_list]


def save_group(text: str, group: SearchSynonym | None = None) -> SearchSynonym:
    """Add or change a group. A term belongs to one group only, so that what a word expands to
    is plain to the organizer."""
    terms = parse_terms(text)
    for term in terms:
        for other in _groups_with(term):
            if group is None or other.id != group.id:
                raise DomainError(
                    _("“%(term)s”已在另一组同义词中：%(terms)s", term=term, terms=other.terms),
                    field="terms",
                )
    group = group or SearchSynonym()
    group.terms = " ".join(terms)
    db.session.add(group)
    db.session.commit()
    return group


def delete_group(group_id: int) -> None:
    db.session.delete(group_or_404(group_id))
    db.session.commit()


def expand(word: str) -> list[str]:
    """The word and the other terms of its group (the word first); just the word if it is in
    none."""
    terms = [word]
    for group in _groups_with(word):
        terms += [term for term in group.term_list if term not in terms]
    return terms[:MAX_TERMS]
