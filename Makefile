# Two commands on a fresh machine: `make run` and `make test`. Everything else is a step they share.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app market
HOST   ?= 127.0.0.1
PORT   ?= 5000
# `make test` runs one pytest worker per core (pytest-xdist) and measures and prints the branch
# coverage of market/ (a plain `pytest PATH` does neither).
PYTEST_ARGS ?= -n auto --cov=market --cov-branch --cov-report=term:skip-covered

.PHONY: run test setup install assets translations db seed lint format bench clean

# The embedded shop runs its deadlines (unpaid orders expiring) in-process.
run: setup db seed
	MARKET_IN_PROCESS_JOBS=1 $(FLASK) run --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

setup: install assets translations

# The virtualenv is rebuilt when pyproject.toml changes.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Bootstrap, its icons and ECharts from npm, copied into static/vendor; then Bootstrap's CSS trimmed
# by PurgeCSS, every static file fingerprinted, compressed (gzip, brotli) and an SVG sprite of the
# icons the templates use, in static/dist (both ignored by git; market/assets.py).
# Rebuilt when a template, our static files or the Python code change: they name the icons and
# the Bootstrap classes that PurgeCSS keeps (scripts/purgecss.config.cjs).
ASSET_SOURCES := $(shell find static templates -path static/dist -prune -o -path static/vendor -prune -o -type f -print) \
	$(shell find market -name '*.py') scripts/purgecss.config.cjs
assets: static/dist/manifest.json
static/vendor/.installed: package.json scripts/vendor_assets.sh
	npm install --no-audit --no-fund --loglevel=error
	sh scripts/vendor_assets.sh
	touch $@
static/dist/manifest.json: static/vendor/.installed scripts/build_assets.py $(ASSET_SOURCES) | install
	$(BIN)/python scripts/build_assets.py

# zh_CN is the default; msgids are Chinese (DESIGN.md §8), en is the second language.
translations: install
	$(BIN)/pybabel compile --use-fuzzy -d market/translations

db: install
	$(FLASK) db upgrade

seed: install
	$(FLASK) seed-demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Refresh the message catalogues after changing user-facing strings.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i messages.pot -d market/translations --no-fuzzy-matching
	rm messages.pot

bench: setup
	$(BIN)/python bench/storefront.py
	$(BIN)/python bench/checkout.py

clean:
	rm -rf $(VENV) node_modules static/vendor static/dist .pytest_cache .ruff_cache

# The API's OpenAPI document, committed for client generators; tests/api/test_openapi.py fails
# when it is not current.
.PHONY: openapi
openapi: install
	$(BIN)/python -m market.api.export docs/openapi.json
