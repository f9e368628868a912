"""The layers of docs/ARCHITECTURE.md (DESIGN.md §3), held by parsing every import of `market/`.

A package imports only from its own layer or below, never upward, and no two packages import each
other, directly or round a circle: an import inside a function counts as much as one at the top
(it runs all the same). A template links only to pages of its own layer or below. Where a lower
layer needs something from above, it takes a registered callback (`payments.hook`,
`orders.elsewhere`) and never imports.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import market

MARKET = Path(market.__file__).parent
TEMPLATES = MARKET.parent / "templates"
APP = "market"  # market/__init__.py: create_app, the entry point that wires every package

# Lowest first. A unit is a package of market/ or a module at its root.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "base",
        {
            "assets",
            "clock",
            "config",
            "database",
            "errorpages",
            "errors",
            "extensions",
            "forms",
            "i18n",
            "idempotency",
            "models",
            "money",
            "pagecache",
            "security",
            "spreadsheets",
            "transactions",
            "uploads",
            "web",
        },
    ),
    ("people and places", {"accounts", "audit", "directory", "notifications"}),
    ("catalog", {"batches", "catalog", "certificates"}),
    ("buying", {"orders", "payments"}),
    ("workflows", {"groupbuy", "presales", "procurement", "settlements"}),
    ("campaign", {"campaign", "exports"}),
    ("entry points", {APP, "api", "cli", "demo", "jobs", "tasks"}),
]
LEVEL = {unit: level for level, (_name, units) in enumerate(LAYERS) for unit in units}

# Arrows not cut yet, each (from, to): the lead's list of what is left, not a licence. A new
# arrow fails at once; one of these that is cut fails `test_every_known_exception_still_exists`
# until it is struck off here.
KNOWN: dict[tuple[str, str], str] = {
    # upward
    ("campaign", "tasks"): "the referral visit, queued after the response (campaign/views.py)",
    ("exports", "tasks"): "a job queues its Celery task (exports/services.py)",
    ("notifications", "tasks"): "mail queued after commit (notifications/services.py)",
    ("i18n", APP): "`from market import ROOT`, a path constant of the app package",
    ("pagecache", APP): "`from market import ROOT`, for the templates' digest",
    ("pagecache", "catalog"): "a listing's products as cache keys",
    ("web", "accounts"): "`accounts.forms.ActionForm` for the one-button forms",
    # circles inside a layer: the arrow that should go
    ("audit", "accounts"): "the actor's User; the log that every domain writes belongs below",
    ("accounts", "notifications"): "accounts tells people things (notify) directly",
    ("orders", "payments"): "orders ⇄ payments: an order's payment state and the pay page",
    ("api", APP): "api/export.py (make openapi) builds the app to read its document",
}


def unit_of(module: str) -> str:
    """'market.campaign.read.dashboard' -> 'campaign'; 'market' -> the app factory."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else APP


def module_name(path: Path) -> str:
    parts = path.relative_to(MARKET.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def where(module: str, is_package: bool) -> str:
    path = module.replace(".", "/")
    return f"{path}/__init__.py" if is_package else f"{path}.py"


def imported_modules(
    tree: ast.AST, module: str, is_package: bool, modules: set[str]
) -> list[tuple[str, int]]:
    """(module, line) of every import of market's own modules anywhere in the tree, functions'
    bodies included; `from market import pagecache` names the module market.pagecache, and
    `from market import create_app` the package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "market":
                found += [
                    (
                        f"market.{alias.name}" if f"market.{alias.name}" in modules else target,
                        node.lineno,
                    )
                    for alias in node.names
                ]
            else:
                found.append((target, node.lineno))
    return [(name, line) for name, line in found if name == "market" or name.startswith("market.")]


def arrows(sources: dict[str, str] | None = None) -> dict[tuple[str, str], list[str]]:
    """{(from unit, to unit): ['market/x/y.py:12', ...]} over market's sources (or the given
    {module: source}, for the checker's own test)."""
    if sources is None:
        sources = {}
        packages = set()
        for path in sorted(MARKET.rglob("*.py")):
            name = module_name(path)
            sources[name] = path.read_text(encoding="utf-8")
            if path.name == "__init__.py":
                packages.add(name)
    else:
        packages = {name for name in sources if name.count(".") == 1}
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, text in sources.items():
        here = unit_of(name)
        tree = ast.parse(text)
        for target, line in imported_modules(tree, name, name in packages, set(sources)):
            there = unit_of(target)
            if there != here:
                found[(here, there)].append(f"{where(name, name in packages)}:{line}")
    return found


def upward(found: dict[tuple[str, str], list[str]]) -> list[str]:
    return [
        f"{here} ({LAYERS[LEVEL[here]][0]}) imports {there} ({LAYERS[LEVEL[there]][0]}): "
        + ", ".join(where)
        for (here, there), where in sorted(found.items())
        if (here, there) not in KNOWN and LEVEL[there] > LEVEL[here]
    ]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of two or more nodes that reach each other round a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return groups


def cycles(found: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The groups of two or more units that import each other round a circle over the arrows
    that are not upward (those fail on their own), known arrows left out: a circle inside a
    layer."""
    graph: dict[str, set[str]] = defaultdict(set)
    for here, there in found:
        if (here, there) not in KNOWN and LEVEL[there] <= LEVEL[here]:
            graph[here].add(there)
    return strongly_connected(graph)


def module_cycles(sources: dict[str, str] | None = None) -> list[list[str]]:
    """The groups of market's modules (or of the given {module: source}) that import each other
    round a circle, inside one unit or across (e.g. a view module registering its routes on
    another's blueprint while that one imports it back)."""
    packages = set()
    if sources is None:
        sources = {}
        for path in sorted(MARKET.rglob("*.py")):
            name = module_name(path)
            sources[name] = path.read_text(encoding="utf-8")
            if path.name == "__init__.py":
                packages.add(name)
    graph: dict[str, set[str]] = defaultdict(set)
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                # `from market.x import y`: the module market.x.y when there is one, else market.x
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in sources
                    else node.module
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target not in sources and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name and target in sources and target != APP:
                    graph[name].add(target)
    return strongly_connected(graph)


def _describe(group: list[str], found: dict[tuple[str, str], list[str]]) -> str:
    inside = [
        f"{here} -> {there} ({where[0]})"
        for (here, there), where in sorted(found.items())
        if here in group and there in group and (here, there) not in KNOWN
    ]
    return " / ".join(inside)


# -- the shop's own code -------------------------------------------------------------------------
def test_every_package_and_root_module_has_a_layer():
    units = {unit_of(module_name(path)) for path in MARKET.rglob("*.py")}
    assert units - set(LEVEL) == set(), "place it in LAYERS (and in docs/ARCHITECTURE.md)"


def test_no_package_imports_from_a_layer_above_it():
    assert upward(arrows()) == []


def test_no_two_packages_import_each_other_even_round_a_circle():
    found = arrows()
    assert [_describe(group, found) for group in cycles(found)] == []


def _with_views(groups: list[list[str]]) -> list[list[str]]:
    return [group for group in groups if any(m.endswith("views") for m in group)]


def test_no_view_module_is_in_an_import_circle():
    """A blueprint lives in a module of its own (`groupbuy/blueprint.py`), which every view
    module of the package imports; the app factory imports the view modules for their routes,
    so no view module imports another that imports it back. (The circles left, through
    `market.tasks` and orders ⇄ payments, are the unit-level KNOWN arrows above.)"""
    assert _with_views(module_cycles()) == []


def test_the_checker_sees_view_modules_importing_each_other():
    sources = {
        "market.groupbuy.views": "from flask import Blueprint\nbp = Blueprint('g', __name__)\n"
        "from market.groupbuy import coop_views\n",
        "market.groupbuy.coop_views": "from market.groupbuy.views import bp\n",
        "market.groupbuy.blueprint": "",
    }
    assert _with_views(module_cycles(sources)) == [
        ["market.groupbuy.coop_views", "market.groupbuy.views"]
    ]


def test_every_known_exception_still_exists():
    found = arrows()
    assert [arrow for arrow in KNOWN if arrow not in found] == [], "cut: strike it off KNOWN"


# -- templates -----------------------------------------------------------------------------------
# Links not cut yet, (template folder, package linked to), as KNOWN.
KNOWN_LINKS: dict[tuple[str, str], str] = {
    ("catalog", "orders"): "the product page's 加入购物车 form posts to the cart",
}
URL_FOR = re.compile(r"""url_for\(\s*['"](\w+)\.\w+['"]""")


def template_links(templates: dict[str, str], home: dict[str, str]) -> dict[tuple[str, str], list]:
    """{(folder's package, linked page's package): ['orders/x.html:3', ...]} of the templates
    ({path under templates/: text}) kept in a package's folder; `home` maps a blueprint to the
    package its views live in. (The shared folders, base.html, admin/, errors/ ..., are no
    package's.)"""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, text in sorted(templates.items()):
        folder = name.split("/")[0]
        if folder not in LEVEL or not (MARKET / folder / "__init__.py").exists():
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for blueprint in URL_FOR.findall(line):
                found[(folder, home[blueprint])].append(f"{name}:{number}")
    return found


def upward_links(found: dict[tuple[str, str], list[str]]) -> list[str]:
    return [
        f"templates/{where} links to a page of {there}"
        for (folder, there), places in sorted(found.items())
        if LEVEL[there] > LEVEL[folder] and (folder, there) not in KNOWN_LINKS
        for where in places
    ]


def _blueprint_homes(app) -> dict[str, str]:
    return {name: unit_of(blueprint.import_name) for name, blueprint in app.blueprints.items()}


def _templates() -> dict[str, str]:
    return {
        path.relative_to(TEMPLATES).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(TEMPLATES.rglob("*.html"))
    }


def test_templates_link_only_to_pages_of_their_layer_or_below(app):
    found = template_links(_templates(), _blueprint_homes(app))
    assert upward_links(found) == []
    assert [link for link in KNOWN_LINKS if link not in found] == [], "cut: strike it off"


# -- the checker itself --------------------------------------------------------------------------
def test_the_checker_sees_an_upward_import_inside_a_function_and_a_circle():
    sources = {
        "market.directory": "",
        "market.directory.pages": "def page():\n    from market.catalog import queries\n",
        "market.catalog": "",
        "market.catalog.models": "from market.directory.models import Village\n",
        "market.accounts": "",
        "market.accounts.models": "from market.directory import models\n",
        "market.directory.models": "from market import accounts\n",
    }
    found = arrows(sources)
    assert upward(found) == [
        "directory (people and places) imports catalog (catalog): market/directory/pages.py:2"
    ]
    assert cycles(found) == [["accounts", "directory"]]


def test_the_checker_sees_a_template_linking_to_a_page_above(app):
    link = "<a href=\"{{ url_for('procurement.purchases') }}\">{{ _('单位采购') }}</a>"
    found = template_links({"orders/my_orders.html": f"<p>\n{link}</p>"}, _blueprint_homes(app))
    assert upward_links(found) == [
        "templates/orders/my_orders.html:2 links to a page of procurement"
    ]
