"""Every status through one state machine (issue 14, point 1).

Every model with a `status` column of an enum type is a `StateMachine`: its `TRANSITIONS` table
names every status (a final one maps to nothing), `move_to` is the mixin's own, and a move outside
the table raises InvalidTransition naming both statuses. No code in `market/` writes a status any
other way: no `x.status = ...`, no `setattr(x, "status", ...)`, no `.values(status=...)` whose
WHERE does not say `Model.may_become(<the same target>)`, no raw `UPDATE ... SET status`.
"""

from __future__ import annotations

import ast
import enum
import importlib
import re
from pathlib import Path

import pytest
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import class_mapper
from sqlalchemy.orm.exc import UnmappedClassError

from market.errors import InvalidTransition
from market.extensions import db
from market.models import StateMachine
from market.orders.models import Order, OrderMode

ROOT = Path(__file__).resolve().parent.parent
MARKET = ROOT / "market"
# The mixin itself is where `self.status = status` happens.
MIXIN_FILE = "market/models.py"
# Attributes named `status` that are not a model's: the page cache's hit/bypass marker.
NOT_A_MODEL = {("market/pagecache/pages.py", "capture.status")}
RAW_STATUS_UPDATE = re.compile(
    r"\bupdate\s+\w+\s+set\b[^;]*\bstatus\s*=", re.IGNORECASE | re.DOTALL
)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _market_files() -> dict[str, Path]:
    return {path.relative_to(ROOT).as_posix(): path for path in sorted(MARKET.rglob("*.py"))}


def status_models() -> dict[type, type[enum.Enum]]:
    """Every mapped class with a `status` column of an enum type, and its enum, by class name
    (the registry's own order varies between processes, and pytest-xdist's workers must collect
    the same tests in the same order)."""
    found = {}
    for mapper in sorted(db.Model.registry.mappers, key=lambda mapper: mapper.class_.__name__):
        column = mapper.columns.get("status")
        if column is not None and isinstance(column.type, SAEnum) and column.type.enum_class:
            found[mapper.class_] = column.type.enum_class
    return found


# Every module that defines models, so that the registry is complete at collection time.
for _path in _market_files().values():
    if "db.Model" in _path.read_text(encoding="utf-8"):
        importlib.import_module(_module_name(_path))
MODELS = status_models()
# Rows whose own data widens the table: each variant is checked.
VARIANTS: dict[type, list[dict]] = {Order: [{"mode": mode} for mode in OrderMode]}


def test_the_app_has_no_other_status_model(app) -> None:
    """The registry after the app is built holds no status model the list above missed."""
    assert status_models() == MODELS
    assert len(MODELS) >= 14


@pytest.mark.parametrize("model", list(MODELS), ids=lambda model: model.__name__)
def test_the_status_has_one_table(model) -> None:
    members = set(MODELS[model])
    assert issubclass(model, StateMachine)
    # Moves go through the mixin; a model may widen `allowed_moves`, never its own check.
    assert model.move_to is StateMachine.move_to
    assert model.may_move_to is StateMachine.may_move_to
    assert set(model.TRANSITIONS) == members
    for current, targets in model.TRANSITIONS.items():
        assert targets <= members, (current, targets - members)
    for widening in getattr(model, "MODE_TRANSITIONS", {}).values():
        for current, targets in widening.items():
            assert current in members and targets <= members
    assert set(model.STATUS_LABELS) == members
    labels = [str(label) for label in model.STATUS_LABELS.values()]
    assert len(set(labels)) == len(labels), labels
    message = model.TRANSITION_MESSAGE._args[0]  # the msgid of the lazy string
    assert "%(current)s" in message and "%(target)s" in message


@pytest.mark.parametrize("model", list(MODELS), ids=lambda model: model.__name__)
def test_only_the_table_moves_and_a_refusal_names_both_statuses(app, model) -> None:
    refused_somewhere = False
    with app.test_request_context():
        for variant in VARIANTS.get(model, [{}]):
            for current in MODELS[model]:
                allowed = model(status=current, **variant).allowed_moves()
                assert allowed >= model.TRANSITIONS[current]
                for target in MODELS[model]:
                    row = model(status=current, **variant)
                    if target in allowed:
                        row.move_to(target)
                        assert row.status is target
                        continue
                    refused_somewhere = True
                    with pytest.raises(InvalidTransition) as refused:
                        row.move_to(target)
                    assert row.status is current
                    message = str(refused.value)
                    assert str(model.STATUS_LABELS[current]) in message, message
                    assert str(model.STATUS_LABELS[target]) in message, message
    assert refused_somewhere


@pytest.mark.parametrize("model", list(MODELS), ids=lambda model: model.__name__)
def test_a_conditional_update_asks_the_table(model) -> None:
    """`may_become(X)` is the WHERE of an UPDATE to X: exactly the statuses allowed to move to X."""
    for target in MODELS[model]:
        sources = {s for s, targets in model.TRANSITIONS.items() if target in targets}
        assert model.sources_of(target) == sources
        if not sources:
            with pytest.raises(ValueError):
                model.may_become(target)
            continue
        clause = model.may_become(target)
        compiled = clause.compile(compile_kwargs={"literal_binds": True})
        named = set(re.findall(r"'([a-z_]+)'", str(compiled)))
        assert named == {s.value for s in sources}, (target, str(compiled))


# -- nothing writes a status but the mixin --------------------------------------------------------
def _leaves(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [leaf for element in target.elts for leaf in _leaves(element)]
    if isinstance(target, ast.Starred):
        return _leaves(target.value)
    return [target]


def _status_value(call: ast.Call) -> ast.expr | None:
    """The status a `.values(...)` call writes, if any."""
    for keyword in call.keywords:
        if keyword.arg == "status":
            return keyword.value
    for argument in call.args:
        if isinstance(argument, ast.Dict):
            for key, value in zip(argument.keys, argument.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "status":
                    return value
                if isinstance(key, ast.Attribute) and key.attr == "status":
                    return value
    return None


def _obeys_table(statement: ast.stmt, value: ast.expr) -> bool:
    """The UPDATE's statement says `Model.may_become(<value>)`; or it writes the column to itself
    (`status=Participation.status`, taking a row lock, moving nothing)."""
    if isinstance(value, ast.Attribute) and value.attr == "status":
        for node in ast.walk(statement):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "update"
                and node.args
                and ast.dump(node.args[0]) == ast.dump(value.value)
            ):
                return True
    for node in ast.walk(statement):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "may_become"
            and len(node.args) == 1
            and ast.dump(node.args[0]) == ast.dump(value)
        ):
            return True
    return False


def status_writes(source: str, filename: str = "<snippet>") -> list[str]:
    """Every place in `source` that writes a status other than through `move_to`."""
    tree = ast.parse(source)
    found = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{node.lineno}: {what}")

    def visit(node: ast.AST, statement: ast.stmt | None) -> None:
        if isinstance(node, ast.stmt):
            statement = node
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for leaf in _leaves(target):
                if (
                    isinstance(leaf, ast.Attribute)
                    and leaf.attr == "status"
                    and (filename, ast.unparse(leaf)) not in NOT_A_MODEL
                ):
                    report(node, ast.unparse(node))
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Name)
                and func.id == "setattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "status"
            ):
                report(node, ast.unparse(node))
            if isinstance(func, ast.Attribute) and func.attr in ("values", "ordered_values"):
                value = _status_value(node)
                if value is not None and not _obeys_table(statement, value):
                    report(node, ast.unparse(statement))
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and RAW_STATUS_UPDATE.search(node.value)
        ):
            report(node, node.value)
        for child in ast.iter_child_nodes(node):
            visit(child, statement)

    visit(tree, None)
    return found


def test_no_code_writes_a_status_but_through_the_table() -> None:
    found = [
        write
        for name, path in _market_files().items()
        if name != MIXIN_FILE
        for write in status_writes(path.read_text(encoding="utf-8"), name)
    ]
    assert found == [], "use move_to (or may_become in a conditional UPDATE):\n" + "\n".join(found)


def test_the_one_allowed_status_attribute_is_not_a_model() -> None:
    from market.pagecache import Capture

    with pytest.raises(UnmappedClassError):
        class_mapper(Capture)
    text = (MARKET / "pagecache" / "pages.py").read_text(encoding="utf-8")
    assert "capture.status = " in text  # the exception is still needed, or it goes


@pytest.mark.parametrize(
    "snippet",
    [
        "order.status = OrderStatus.PAID",
        "order.status: OrderStatus = OrderStatus.PAID",
        "first, order.status = 1, OrderStatus.PAID",
        "setattr(order, 'status', OrderStatus.PAID)",
        "db.session.execute(update(Order).where(Order.id == 1).values(status=OrderStatus.PAID))",
        "update(Order).where(Order.status == OrderStatus.PENDING_PAYMENT)"
        ".values(status=OrderStatus.PAID)",
        "update(Order).where(Order.may_become(OrderStatus.CANCELLED))"
        ".values(status=OrderStatus.PAID)",
        "update(Order).values({'status': OrderStatus.PAID})",
        "update(Order).values({Order.status: OrderStatus.PAID})",
        "update(Order).where(Order.id == 1).values(status=Payment.status)",
        "db.session.execute(text(\"UPDATE orders SET paid_fen = 0, status = 'paid'\"))",
    ],
)
def test_the_scan_finds_a_status_written_around_the_table(snippet: str) -> None:
    assert status_writes(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        "order.move_to(OrderStatus.PAID)",
        "Order(status=OrderStatus.PENDING_PAYMENT)",
        "if order.status == OrderStatus.PAID:\n    pass",
        "select(Order).where(Order.status == OrderStatus.PAID)",
        "update(Order).where(Order.id == 1, Order.may_become(OrderStatus.PAID))"
        ".values(status=OrderStatus.PAID, paid_at=now)",
        "update(Participation).where(Participation.id == 1).values(status=Participation.status)",
        "update(Sku).where(Sku.id == 1).values(stock=Sku.stock - 1)",
    ],
)
def test_the_scan_lets_the_table_and_reads_through(snippet: str) -> None:
    assert status_writes(snippet) == []


def test_every_status_enum_belongs_to_a_state_machine() -> None:
    defined = []
    for path in _market_files().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ClassDef)
                and node.name.endswith("Status")
                and any("Enum" in ast.unparse(base) for base in node.bases)
            ):
                defined.append(getattr(importlib.import_module(_module_name(path)), node.name))
    assert len(defined) >= 14
    assert all(issubclass(found, enum.Enum) for found in defined)
    machines = set(MODELS.values())
    assert [found.__name__ for found in defined if found not in machines] == []
