"""What changed, and so which versions to bump once it is committed: session and engine events.

- ORM flushes, from the objects the session flushed (after_flush), by class;
- `session.execute(update(...))` and friends (do_orm_execute): the conditional stock UPDATE of
  order placement names its SKU, so a checkout bumps that product's version only; a statement
  whose rows cannot be told bumps the whole catalog;
- anything else that writes those tables on any connection (engine events: text SQL, bulk loads
  outside the session) bumps the whole of what that table feeds.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, TextClause
from sqlalchemy.sql.schema import Column

from market.pagecache.versions import (
    CATALOG,
    PRODUCT_PART_TABLES,
    bump,
    coarse_keys,
    is_tracked,
    keys_of_sql,
    product_key,
)

_DML = re.compile(r"^\s*(?:insert|update|delete|replace|merge|copy|truncate)\b", re.I)
_PENDING = "pagecache_pending"
_SEEN = "market_pagecache_seen"  # execution option: this statement's keys are already counted
_session_of_connection: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pending(session: Session) -> set[str]:
    return session.info.setdefault(_PENDING, set())


def _table_name(obj: Any) -> str:
    table = getattr(type(obj), "__table__", None)
    return getattr(table, "name", "") if table is not None else ""


def _keys_of_object(obj: Any) -> set[str]:
    from sqlalchemy import inspect

    table = _table_name(obj)
    if table == "products":
        return {CATALOG, product_key(obj.id)} if obj.id is not None else coarse_keys(table)
    if table in PRODUCT_PART_TABLES:
        state = inspect(obj)
        history = state.attrs.product_id.history
        ids = {i for i in (*history.added, *history.unchanged, *history.deleted) if i is not None}
        if not ids and "product_id" in state.dict:
            ids = {state.dict["product_id"]}
        if not ids:
            return coarse_keys(table)
        return {product_key(i) for i in ids}
    return coarse_keys(table)


def _after_flush(session: Session, flush_context) -> None:
    keys: set[str] = set()
    for obj in session.new:
        keys |= _keys_of_object(obj)
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            keys |= _keys_of_object(obj)
    for obj in session.deleted:
        keys |= _keys_of_object(obj)
    if keys:
        _pending(session).update(keys)


def _ids_in_where(statement: Any, table_name: str, parameters: Any = None) -> set[int] | None:
    """The ids a DML statement's WHERE restricts it to (`id = x`, `id IN (...)`, ANDed with
    anything; x a value, or a `bindparam` given in `parameters`, as a statement built once is
    run), or None when it does not say."""
    where = getattr(statement, "whereclause", None)
    if where is None:
        return None
    clauses = (
        list(where.clauses)
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    for clause in clauses:
        if not isinstance(clause, BinaryExpression):
            continue
        left, right = clause.left, clause.right
        if not (
            isinstance(left, Column) and left.name == "id" and left.table.name == table_name
        ) or not isinstance(right, BindParameter):
            continue
        value = right.effective_value
        if value is None and isinstance(parameters, dict):
            value = parameters.get(right.key)
        if clause.operator is operators.eq and isinstance(value, int):
            return {value}
        if (
            clause.operator is operators.in_op
            and isinstance(value, list | tuple)
            and all(isinstance(v, int) for v in value)
        ):
            return set(value)
    return None


def _product_ids_of_parts(session: Session, table_name: str, ids: set[int]) -> set[int] | None:
    from market.catalog.models import BundlePart, ProductImage, Sku

    model = {"skus": Sku, "product_images": ProductImage, "bundle_parts": BundlePart}[table_name]
    found: set[int] = set()
    unknown: set[int] = set()
    for row_id in ids:
        obj = session.identity_map.get(identity_key(model, row_id))
        product_id = obj.__dict__.get("product_id") if obj is not None else None
        if product_id is None:
            unknown.add(row_id)
        else:
            found.add(product_id)
    if unknown:
        from sqlalchemy import select

        found |= set(
            session.execute(
                select(model.product_id).where(model.id.in_(unknown)),
                execution_options={_SEEN: True, "autoflush": False},
            ).scalars()
        )
    return found


def _keys_of_statement(session: Session, statement: Any, parameters: Any = None) -> set[str]:
    if isinstance(statement, TextClause):
        return keys_of_sql(statement.text) if _DML.match(statement.text) else set()
    table = getattr(statement, "table", None)
    name = getattr(table, "name", "")
    if not is_tracked(name):
        return set()
    if name == "products" or name in PRODUCT_PART_TABLES:
        if getattr(statement, "is_insert", False):
            return coarse_keys(name)
        ids = _ids_in_where(statement, name, parameters)
        if ids is None:
            return coarse_keys(name)
        if name == "products":
            return {CATALOG} | {product_key(i) for i in ids}
        product_ids = _product_ids_of_parts(session, name, ids)
        return {product_key(i) for i in product_ids} if product_ids else set()
    return coarse_keys(name)


def _do_orm_execute(state) -> None:
    if state.is_select:
        return
    statement = state.statement
    keys = _keys_of_statement(state.session, statement, state.parameters)
    if keys:
        _pending(state.session).update(keys)
    state.update_execution_options(**{_SEEN: True})


def _after_begin(session: Session, transaction, connection) -> None:
    _session_of_connection[connection] = session


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a released savepoint: the outer transaction may still roll back
    keys = session.info.pop(_PENDING, None)
    if keys:
        bump(keys)


def _after_transaction_end(session: Session, transaction) -> None:
    # The outermost transaction ended: committed keys were bumped, rolled back ones are dropped.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    """The net under everything else: a write to a tracked table on any connection that neither
    a flush nor do_orm_execute accounted for."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None and not isinstance(compiled.statement, TextClause):
        if not (context.isinsert or context.isupdate or context.isdelete):
            return
    elif not _DML.match(statement):
        return
    if context is not None and context.execution_options.get(_SEEN):
        return
    owner = _session_of_connection.get(conn)
    if owner is not None and owner._flushing:
        return  # after_flush names the rows
    keys = keys_of_sql(statement)
    if not keys:
        return
    if owner is not None and owner.in_transaction():
        _pending(owner).update(keys)
    else:
        conn.info.setdefault(_PENDING, set()).update(keys)


def _connection_commit(conn) -> None:
    keys = conn.info.pop(_PENDING, None)
    if keys:
        # Bumped now and again once the commit is done (checkin), so that a page rendered in
        # between from the old rows is not kept.
        conn.info["pagecache_committed"] = keys
        bump(keys)


def _connection_rollback(conn) -> None:
    conn.info.pop(_PENDING, None)


def _checkin(dbapi_connection, connection_record) -> None:
    keys = connection_record.info.pop("pagecache_committed", None)
    if keys:
        bump(keys)


_installed = False


def install_listeners() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _do_orm_execute)
    event.listen(Session, "after_begin", _after_begin)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_transaction_end", _after_transaction_end)
    event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
    event.listen(Engine, "commit", _connection_commit)
    event.listen(Engine, "rollback", _connection_rollback)
    from sqlalchemy.pool import Pool

    event.listen(Pool, "checkin", _checkin)
